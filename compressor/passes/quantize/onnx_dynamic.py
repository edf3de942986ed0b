"""quantize.onnx.dynamic: int8 weights; activations quantized on the fly at run time."""
from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from compressor.artifact import Artifact
from compressor.formats import Format
from compressor.passes.base import (
    PassConfig,
    PassContext,
    PassOutput,
    QuantizePass,
)


class DynamicQuantConfig(PassConfig):
    """Settings of ``quantize.onnx.dynamic``."""

    per_channel: bool = False
    weight_type: Literal["int8", "uint8"] = "int8"
    reduce_range: bool = False
    op_types: list[str] = Field(default_factory=list, description="op types to quantize (default: all)")
    exclude_nodes: list[str] = Field(default_factory=list, description="node names kept in float")
    preprocess: bool = Field(True, description="run ORT's quant_pre_process (shape inference, fusions) first")


class QuantizeOnnxDynamic(QuantizePass):
    """Dynamic int8 quantization through ONNX Runtime's quantizer (no calibration data)."""

    name = "quantize.onnx.dynamic"
    version = 1
    config_class = DynamicQuantConfig
    input_formats: ClassVar[frozenset[Format]] = frozenset({Format.ONNX})

    def slow_reason(self, entry: dict[str, Any], cpu: dict[str, Any]) -> str:
        return self.coverage_reason(entry) or (
            "dynamic quantization turns Conv into ConvInteger and quantizes activations on every call; "
            "ONNX Runtime's CPU ConvInteger kernel is slow, so use quantize.onnx.static for conv nets "
            "(dynamic pays off for MatMul-heavy models such as transformers)")

    def check(self, artifact: Artifact, ctx: PassContext) -> None:
        from compressor.passes.quantize._onnx import check_node_names, check_op_types
        from compressor.passes.quantize._onnx_checks import check_quantizable_graph

        super().check(artifact, ctx)
        check_quantizable_graph(Path(artifact.path), self.name)
        check_op_types(Path(artifact.path), self.config.op_types, self.name)
        check_node_names(Path(artifact.path), self.config.exclude_nodes, self.name)

    def run(self, artifact: Artifact, ctx: PassContext, out_dir: Path) -> PassOutput:
        from compressor.passes.quantize._onnx import quantize_dynamic

        path = out_dir / "model.onnx"
        report = quantize_dynamic(Path(artifact.path), path, self.config, ctx.work_dir)
        return PassOutput(path=path, signature=artifact.signature, report=report)
