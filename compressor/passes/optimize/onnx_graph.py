"""optimize.onnx: ONNX Runtime's graph optimizations applied offline and saved."""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field

from compressor.artifact import Artifact
from compressor.formats import Format
from compressor.passes.base import Pass, PassConfig, PassContext, PassOutput


class OptimizeOnnxConfig(PassConfig):
    """Settings of ``optimize.onnx``."""

    level: Literal["auto", "basic", "extended", "all"] = Field(
        "auto",
        description="ORT optimization level; 'extended' fuses into ORT's own ops (FusedConv, FusedGemm), "
        "'all' adds layout transforms tied to this CPU (the file may not run elsewhere); 'auto': "
        "'basic' when a quantize.onnx pass follows in the variant (ORT's quantizer cannot read the "
        "fused ops), else 'extended'",
    )
    qdq_propagation: bool = Field(
        True,
        description="let ORT move Quantize/Dequantize nodes across MaxPool / Reshape / Transpose; set false "
        "to keep a float conv's chain float (see quantize.onnx.static min_int8_reduction). The saved "
        "graph has ORT's kernels fixed in it, so the setting holds wherever the file is loaded",
    )
    atol: float = Field(1e-4, gt=0, description="max abs error allowed vs the parent")


class OptimizeOnnx(Pass):
    """Constant folding, node fusions and redundant-node removal, written to a new file."""

    name = "optimize.onnx"
    version = 3  # 3: level auto (basic before a quantize.onnx pass), level recorded in the report
    config_class = OptimizeOnnxConfig
    compares_speed = True
    input_formats: ClassVar[frozenset[Format]] = frozenset({Format.ONNX})
    is_conversion = True  # same format, but the graph is rewritten: check parity

    def __init__(self, config: OptimizeOnnxConfig | None = None) -> None:
        super().__init__(config)
        self.level_reason = ""

    def parity_tolerance(self) -> float | None:
        return self.config.atol

    def fit_to_chain(self, later: list[Pass]) -> None:
        from compressor.errors import ConfigError

        quantizer = next((p.name for p in later if p.name.startswith("quantize.onnx.")), None)
        level = self.config.level
        if quantizer is None:
            if level == "auto":
                self.config = self.config.model_copy(update={"level": "extended"})
                self.level_reason = "auto: no quantize.onnx pass follows, so ORT's fused ops are kept"
            return
        if level in ("extended", "all"):
            raise ConfigError(
                f"level '{level}' writes ONNX Runtime's own fused ops (FusedConv, FusedGemm"
                f"{', NCHWc Conv/ReorderInput' if level == 'all' else ''}), which {quantizer} later in this "
                f"variant cannot quantize (they would stay float, or the quantizer fails); use level: basic "
                f"(or leave level unset) before {quantizer}, and put another optimize.onnx after it to fuse "
                f"the quantized graph"
            )
        if level == "auto":
            self.config = self.config.model_copy(update={"level": "basic"})
            self.level_reason = (f"auto: {quantizer} follows, so only ONNX-standard rewrites (folding, "
                                 f"Conv+BatchNorm/Add/Mul fusion, redundant nodes) that its quantizer can read")

    def run(self, artifact: Artifact, ctx: PassContext, out_dir: Path) -> PassOutput:
        from compressor.frameworks._onnx import ort_optimize

        path = out_dir / "model.onnx"
        level = "extended" if self.config.level == "auto" else self.config.level
        disabled = [] if self.config.qdq_propagation else ["QDQPropagationTransformer"]
        ort_optimize(Path(artifact.path), path, level, disabled)
        meta = {"portable": level != "all"}
        report: dict = {"level": level}
        if self.level_reason:
            report["level_reason"] = self.level_reason
        if disabled:
            report["disabled_optimizers"] = disabled
        if level == "all":
            report["portability"] = "ORT CPU kernels and layouts of this machine are fixed in the file (x86 NCHWc)"
        return PassOutput(path=path, signature=artifact.signature, meta=meta, report=report)
