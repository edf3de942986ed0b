"""convert.tflite: Keras / SavedModel (TFLite converter) or PyTorch (litert-torch) to a .tflite file.

``quantize`` picks none | fp16 | dynamic | int8. int8 is full integer, calibrated on the
pipeline's calibration split. The pass does not trust the converter's flags: it reads the written
file's ops and tensor types and refuses an "int8" file without int8 kernels.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from compressor.artifact import Artifact
from compressor.errors import ConfigError, PassError
from compressor.formats import Format
from compressor.passes.base import Pass, PassConfig, PassContext, PassOutput

# input format -> "module:function(artifact, config, out_path, ctx) -> None"
ADAPTERS = {
    Format.KERAS: "compressor.passes.convert._tf:export_tflite",
    Format.SAVED_MODEL: "compressor.passes.convert._tf:export_tflite",
    Format.TORCH: "compressor.passes.convert._litert:export_tflite",
}
# what litert-torch can do for each quantize mode
TORCH_MODES = ("none", "dynamic", "int8")


class ConvertTfliteConfig(PassConfig):
    """Settings of ``convert.tflite``."""

    quantize: Literal["none", "fp16", "dynamic", "int8"] = Field(
        "none", description="none: float32; fp16: float16 weights; dynamic: int8 weights; int8: full integer"
    )
    int8_io: bool | None = Field(
        None, description="int8: int8 model inputs and outputs (TF default false; litert-torch's int8 always has them)"
    )
    calibration_samples: int = Field(256, ge=1, description="int8: calibration samples (from the calibration split)")
    allow_float_ops: bool = Field(False, description="int8: accept a file where some compute ops stayed float")
    atol: float = Field(1e-4, gt=0, description="quantize none: max abs error allowed vs the parent")

    @model_validator(mode="after")
    def _no_ignored_keys(self) -> ConvertTfliteConfig:
        self.only_with(("calibration_samples",), self.quantize in ("int8", "dynamic"), "quantize: int8 or dynamic")
        self.only_with(("allow_float_ops",), self.quantize == "int8", "quantize: int8")
        self.only_with(("atol",), self.quantize == "none", "quantize: none")
        if self.int8_io is not None and self.quantize != "int8":
            raise ValueError(f"int8_io={self.int8_io} applies only to quantize: int8 (got quantize: {self.quantize}); "
                             f"remove it")
        return self


class ConvertTflite(Pass):
    """Convert to TFLite; verify the file's kernels; the run step checks parity (enforced for float)."""

    name = "convert.tflite"
    version = 3  # 2: PyTorch int8 calibrates in batches; 3: a several-input torch model keeps its input names
    config_class = ConvertTfliteConfig
    input_formats: ClassVar[frozenset[Format]] = frozenset(ADAPTERS)
    output_format = Format.TFLITE
    is_conversion = True

    def slow_reason(self, entry: dict[str, Any], cpu: dict[str, Any]) -> str:
        report = entry.get("report") or {}
        left = [*report.get("float_compute_ops", []), *report.get("float_islands", [])]
        if self.config.quantize == "int8" and left:
            return (f"{len(left)} op(s) still run in float ({', '.join(left[:4])}), each behind a DEQUANTIZE / "
                    f"QUANTIZE pair that costs more than the int8 part saves at this size")
        if self.config.quantize == "fp16":
            return ("float16 weights are dequantized to float32 when the interpreter loads the model: fp16 TFLite "
                    "halves the file, not the time, on CPUs (it pays off on GPU delegates)")
        if self.config.quantize == "dynamic":
            return ("dynamic-range int8 quantizes activations on every call and keeps float outputs; "
                    "at this model size that overhead outweighs the int8 kernels: try quantize: int8")
        if not cpu.get("int8_dot_product", False):
            return "this CPU has no int8 dot-product instructions (VNNI/dotprod), so XNNPACK's int8 kernels gain little"
        return "XNNPACK's float32 kernels are as fast as its int8 ones for this op mix and size"

    def lowers_precision(self) -> bool:
        return self.config.quantize != "none"

    def reads(self) -> tuple[str, ...]:
        return ("calibration",) if self.config.quantize in ("int8", "dynamic") else ()

    def parity_tolerance(self) -> float | None:
        return self.config.atol if self.config.quantize == "none" else None

    def check(self, artifact: Artifact, ctx: PassContext) -> None:
        super().check(artifact, ctx)
        q, io = self.config.quantize, self.config.int8_io
        if artifact.format == Format.TORCH:
            if q not in TORCH_MODES:
                raise ConfigError(
                    f"convert.tflite quantize: {q} is not available for PyTorch models (litert-torch does "
                    f"{', '.join(TORCH_MODES)}); use quantize: dynamic or int8."
                )
            if q == "int8" and io is False:
                raise ConfigError(
                    "convert.tflite: litert-torch's static int8 always has int8 inputs and outputs, so int8_io: false "
                    "cannot be honoured for a PyTorch model; remove int8_io (the runtime quantizes float feeds)."
                )
        if q == "int8" and artifact.format != Format.TORCH:
            from compressor.passes.convert._tf import calibration_check

            calibration_check(artifact, ctx, self.config.calibration_samples)
        elif q in ("int8", "dynamic") and artifact.format == Format.TORCH:
            from compressor.data import feeds_for

            feeds_for(artifact.signature, ctx.data.split("calibration").take(2).inputs)

    def run(self, artifact: Artifact, ctx: PassContext, out_dir: Path) -> PassOutput:
        from compressor.code import load_attr
        from compressor.frameworks._litert import summarize, tflite_signature

        path = out_dir / "model.tflite"
        ctx.say(f"converting {artifact.format.value} -> tflite (quantize: {self.config.quantize})")
        load_attr(ADAPTERS[artifact.format])(artifact, self.config, path, ctx)
        info = summarize(path)
        self._verify(info)
        signature, facts = tflite_signature(path, artifact.signature.layout)
        report = {k: info[k] for k in ("ops", "io_dtypes", "compute_ops", "int8_compute_ops", "int8_share",
                                       "int8_weight_share", "float_compute_ops", "float_islands")}
        meta = {"quantize": self.config.quantize, "converter": "litert-torch" if artifact.format == Format.TORCH
                else "tflite", **facts}
        return PassOutput(path=path, signature=signature, meta=meta, report=report)

    def _verify(self, info: dict) -> None:
        """An int8 file must hold int8 kernels (and only those, unless allow_float_ops)."""
        q = self.config.quantize
        if q == "int8" and info["int8_compute_ops"] == 0:
            raise PassError(
                f"convert.tflite quantize: int8 produced no int8 kernels (ops: {info['ops']}); the converter "
                f"kept the model in float. Check the calibration data, or use quantize: dynamic."
            )
        if q == "int8" and info["float_compute_ops"] and not self.config.allow_float_ops:
            raise PassError(
                f"convert.tflite quantize: int8 left compute ops in float: {', '.join(info['float_compute_ops'][:6])}; "
                f"set allow_float_ops: true to accept a mixed file, or change those layers."
            )
        if q in ("dynamic",) and info["int8_weight_share"] == 0:
            raise PassError(
                "convert.tflite quantize: dynamic left every weight in float (TFLite skips weights under 1024 "
                "elements); use quantize: int8 for a small model."
            )
