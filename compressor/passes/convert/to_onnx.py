"""convert.onnx: export a model to ONNX. The framework adapter is chosen by input format."""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field

from compressor.artifact import Artifact
from compressor.formats import Format
from compressor.passes.base import Pass, PassConfig, PassContext, PassOutput

# input format -> "module:function(artifact, config, out_path) -> Signature"
ADAPTERS = {
    Format.TORCH: "compressor.passes.convert._torch:export_onnx",
    Format.TORCH_EXPORT: "compressor.passes.convert._torch:export_onnx",
    Format.KERAS: "compressor.passes.convert._tf:export_onnx",
    Format.SAVED_MODEL: "compressor.passes.convert._tf:export_onnx",
}


class ConvertOnnxConfig(PassConfig):
    """Settings of ``convert.onnx``."""

    opset: int = Field(18, ge=13, le=23, description="ONNX opset to target")
    dynamic_batch: bool = Field(True, description="make the batch dimension symbolic")
    exporter: Literal["dynamo", "torchscript"] = Field(
        "dynamo", description="PyTorch exporter: torch.export based (dynamo) or the legacy TorchScript one"
    )
    atol: float = Field(1e-4, gt=0, description="max abs error allowed vs the parent on the parity batch")
    kv_cache: bool | None = Field(
        None, description="causal LMs: export with past key/value inputs and present outputs (dynamic batch, "
        "sequence and past length); default: when the torch module declares the cache trait")
    dynamic_axes: dict[str, dict[int, str]] = Field(
        default_factory=dict,
        description="more symbolic dims per input besides the batch, e.g. {input_ids: {1: sequence}}",
    )


class ConvertOnnx(Pass):
    """Export to ONNX and check numeric parity against the source model."""

    name = "convert.onnx"
    version = 1
    config_class = ConvertOnnxConfig
    input_formats: ClassVar[frozenset[Format]] = frozenset(ADAPTERS)
    output_format = Format.ONNX
    is_conversion = True

    def parity_tolerance(self) -> float | None:
        return self.config.atol

    def check(self, artifact: Artifact, ctx: PassContext) -> None:
        from compressor.errors import ConfigError

        super().check(artifact, ctx)
        if artifact.meta.get("exportable_to_onnx") is False:
            from compressor.errors import ConversionError

            raise ConversionError(
                f"convert.onnx: the model was made by {artifact.lineage.pass_name}, whose quantized torch modules "
                f"the ONNX exporter cannot export; put convert.onnx first and quantize with quantize.onnx.* instead."
            )
        names = artifact.signature.input_names
        for name, axes in self.config.dynamic_axes.items():
            if name not in names:
                raise ConfigError(
                    f"convert.onnx: dynamic_axes names input '{name}', which the model does not have "
                    f"(inputs: {', '.join(names)}); fix dynamic_axes."
                )
            rank = len(next(t for t in artifact.signature.inputs if t.name == name).shape)
            bad = [a for a in axes if not 0 < int(a) < rank]
            if bad:
                raise ConfigError(
                    f"convert.onnx: dynamic_axes gives axis {bad[0]} for input '{name}' of rank {rank}; "
                    f"allowed: 1..{rank - 1} (axis 0 is the batch, set by dynamic_batch)."
                )

    def run(self, artifact: Artifact, ctx: PassContext, out_dir: Path) -> PassOutput:
        from compressor.code import load_attr

        export = load_attr(ADAPTERS[artifact.format])
        path = out_dir / "model.onnx"
        signature = export(artifact, self.config, path)
        return PassOutput(path=path, signature=signature, meta={"opset": self.config.opset})
