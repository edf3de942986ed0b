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

    def run(self, artifact: Artifact, ctx: PassContext, out_dir: Path) -> PassOutput:
        from compressor.registry import load_attr

        export = load_attr(ADAPTERS[artifact.format])
        path = out_dir / "model.onnx"
        signature = export(artifact, self.config, path)
        return PassOutput(path=path, signature=signature, meta={"opset": self.config.opset})
