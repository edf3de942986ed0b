"""quantize.onnx.static: int8 weights and activations, calibrated on the calibration split."""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field

from compressor.artifact import Artifact
from compressor.formats import Format
from compressor.passes.base import Pass, PassConfig, PassContext, PassOutput


class StaticQuantConfig(PassConfig):
    """Settings of ``quantize.onnx.static``."""

    calibration: Literal["minmax", "entropy", "percentile", "distribution"] = "minmax"
    percentile: float = Field(99.999, gt=90, le=100, description="with calibration: percentile")
    per_channel: bool = Field(True, description="one scale per output channel of each weight")
    format: Literal["qdq", "qoperator"] = Field(
        "qdq", description="QDQ (Quantize/DequantizeLinear pairs ORT fuses) or QOperator (QLinear* ops)"
    )
    activation_type: Literal["int8", "uint8"] = "uint8"
    weight_type: Literal["int8", "uint8"] = "int8"
    symmetric_activations: bool | None = None
    symmetric_weights: bool = True
    reduce_range: bool = Field(False, description="7-bit weights, for CPUs without VNNI that may saturate")
    op_types: list[str] = Field(default_factory=list, description="op types to quantize (default: all)")
    exclude_nodes: list[str] = Field(default_factory=list, description="node names kept in float")
    preprocess: bool = Field(True, description="run ORT's quant_pre_process (shape inference, fusions) first")
    calibration_batch_size: int = Field(32, ge=1)


class StaticQuantOnnx(Pass):
    """Static int8 quantization through ONNX Runtime's quantizer, fed by the pipeline's data."""

    name = "quantize.onnx.static"
    version = 1
    config_class = StaticQuantConfig
    input_formats: ClassVar[frozenset[Format]] = frozenset({Format.ONNX})
    data_splits = ("calibration",)

    def check(self, artifact: Artifact, ctx: PassContext) -> None:
        from compressor.passes.quantize._onnx import check_node_names, check_op_types

        super().check(artifact, ctx)
        check_op_types(Path(artifact.path), self.config.op_types, self.name)
        check_node_names(Path(artifact.path), self.config.exclude_nodes, self.name)

    def run(self, artifact: Artifact, ctx: PassContext, out_dir: Path) -> PassOutput:
        from compressor.passes.quantize._onnx import quantize_static

        split = ctx.data.split("calibration", needed_by=f"pass '{self.name}'")
        ctx.say(f"calibrating on {len(split)} samples ({self.config.calibration})")
        path = out_dir / "model.onnx"
        report = quantize_static(Path(artifact.path), path, split, artifact.signature, self.config, ctx.work_dir)
        return PassOutput(path=path, signature=artifact.signature, report=report)
