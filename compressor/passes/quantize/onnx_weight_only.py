"""quantize.onnx.weight_only: block-wise int4 / int8 MatMul weights (ONNX Runtime MatMulNBits).

Only MatMuls with a constant weight are touched; activations stay float. Algorithms: ``default``
(ORT's native blockwise quantizer, 4 or 8 bits), ``rtn`` (round to nearest), ``hqq`` (half-
quadratic, no data) and ``gptq`` (calibrated on the pipeline's calibration split), the last
three through the copy of neural-compressor's weight-only code that ORT bundles. With 4 bits the
embedding tables (a Gather on a constant float matrix) also go to 4-bit blocks (ORT's
GatherBlockQuantized, round to nearest, checked row by row: ``_onnx_gather``); ``quantize_embedding``
turns that off (false) or makes it required (true).
``block_size`` defaults to 32: with ORT 1.32's rtn / gptq the usual 128 fails when the input
width divided by the block size is odd (384 / 128 in MiniLM). ``accuracy_level: 4`` lets the
kernel quantize activations to int8 and use int8 dot products on the CPU; lower levels compute
in float32 after unpacking the weights.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from compressor.artifact import Artifact
from compressor.formats import Format
from compressor.passes.base import (
    PassConfig,
    PassContext,
    PassOutput,
    QuantizePass,
)


class WeightOnlyConfig(PassConfig):
    """Settings of ``quantize.onnx.weight_only``."""

    bits: Literal[4, 8] = 4
    block_size: Literal[16, 32, 64, 128, 256, "auto"] | None = Field(
        None, description="weights per quantization block (along K); auto: measured (32 when only algorithm is set)")
    algorithm: Literal["default", "rtn", "hqq", "gptq", "auto"] | None = Field(
        None, description="auto: rtn / hqq measured (default when only block_size is set); with neither key, "
        "both are auto: each candidate scored and profiled, the fastest within the budget kept")
    symmetric: bool = Field(False, description="symmetric blocks (no zero points)")
    accuracy_level: Literal[0, 1, 2, 3, 4] = Field(
        4, description="MatMulNBits compute type: 0 unset, 1 fp32, 2 fp16, 3 bf16, 4 int8 activations")
    exclude_nodes: list[str] = Field(default_factory=list, description="MatMul node names kept in float")
    quantize_embedding: bool | None = Field(
        None, description="4-bit blocks for embedding tables (Gather -> GatherBlockQuantized); default: on for "
                          "bits 4 where ONNX Runtime runs it, kept float otherwise (true: fail instead)")
    calibration_batch_size: int = Field(8, ge=1, description="with gptq: calibration batch size")

    @model_validator(mode="after")
    def _no_ignored_keys(self) -> WeightOnlyConfig:
        self.only_with(("calibration_batch_size",), self.algorithm == "gptq", "algorithm: gptq")
        self.only_with(("quantize_embedding",), self.bits == 4, "bits: 4 (GatherBlockQuantized is 4-bit)")
        return self

    def auto(self) -> bool:
        """Whether block size or algorithm is chosen from measurements (either set to auto, or neither set)."""
        return "auto" in (self.block_size, self.algorithm) or (self.block_size is None and self.algorithm is None)

    def fixed(self) -> WeightOnlyConfig:
        """The settings with today's defaults filled in (block_size 32, algorithm default): an explicit choice."""
        return self.model_copy(update={"block_size": self.block_size or 32, "algorithm": self.algorithm or "default"})


class QuantizeOnnxWeightOnly(QuantizePass):
    """MatMul weights to 4 or 8 bits in blocks; activations stay float."""

    name = "quantize.onnx.weight_only"
    version = 4  # 2: the report says the accuracy level and zero points; 3: auto; 4: embedding tables to 4 bits
    config_class = WeightOnlyConfig
    input_formats: ClassVar[frozenset[Format]] = frozenset({Format.ONNX})

    def reads(self) -> tuple[str, ...]:
        if self.config.auto():  # candidates are profiled on calibration samples and scored on the evaluation split
            return ("calibration", "evaluation")
        return ("calibration",) if self.config.algorithm == "gptq" else ()

    def uses_budget(self) -> bool:
        return self.config.auto()

    def measures_speed(self) -> bool:
        return self.config.auto()

    def slow_reason(self, entry: dict[str, Any], cpu: dict[str, Any]) -> str:
        report = entry.get("report") or {}
        if str(report.get("zero_points", "")).startswith("float") or report.get("accuracy_level_written") == 0:
            algorithm = (report.get("auto") or {}).get("algorithm", self.config.algorithm)
            return (f"the {algorithm} quantizer wrote {report.get('zero_points')} zero points and accuracy "
                    f"level {report.get('accuracy_level_written')} into MatMulNBits, which keeps the kernel off its int8 "
                    f"path (it dequantizes every block to float on each call); use algorithm rtn / gptq / default")
        if self.config.accuracy_level != 4:
            return ("MatMulNBits below accuracy_level 4 unpacks the low-bit weights and multiplies in float32; "
                    "set accuracy_level: 4 for int8 dot products")
        return ("MatMulNBits dequantizes weights block by block; at this batch the unpacking costs more than "
                "the smaller weights save (weight-only pays off when weight memory traffic dominates)")

    def check(self, artifact: Artifact, ctx: PassContext) -> None:
        from compressor.errors import PassError
        from compressor.passes.quantize._onnx import check_node_names
        from compressor.passes.quantize._onnx_nbits import has_weight_matmul

        super().check(artifact, ctx)
        if not has_weight_matmul(Path(artifact.path)):
            raise PassError(
                f"pass '{self.name}': the model has no MatMul with a constant weight, so there is nothing "
                f"for MatMulNBits to quantize (Conv and Gemm are not covered); use quantize.onnx.static "
                f"or quantize.onnx.dynamic for this model."
            )
        check_node_names(Path(artifact.path), self.config.exclude_nodes, self.name)

    def run(self, artifact: Artifact, ctx: PassContext, out_dir: Path) -> PassOutput:
        from compressor.passes.quantize._onnx import check_calibration_data
        from compressor.passes.quantize._onnx_nbits import quantize_weight_only

        split = None
        if self.config.algorithm == "gptq" or self.config.auto():
            split = ctx.data.split("calibration", needed_by=f"pass '{self.name}'")
            check_calibration_data(split, artifact.signature, self.name)
        path = out_dir / "model.onnx"
        if self.config.auto():
            from compressor.passes.quantize._onnx_weight_auto import run_weight_auto

            report = run_weight_auto(artifact, ctx, self.config, path, split)
            block_size = report["auto"]["block_size"]
        else:
            block_size = self.config.fixed().block_size
            report = quantize_weight_only(Path(artifact.path), path, self.config.fixed(), split, artifact.signature)
        if self.config.bits == 4 and self.config.quantize_embedding is not False:
            # after the MatMul choice (auto scores its candidates with the table float; each row of the
            # 4-bit table is checked against the float one, within one quantization step)
            from compressor.errors import PassError
            from compressor.passes.quantize._onnx_gather import quantize_embeddings

            report.update(quantize_embeddings(path, block_size, self.config.symmetric))
            if self.config.quantize_embedding and report["embedding"] != "int4":
                raise PassError(f"pass '{self.name}': quantize_embedding: true, but the embedding stays float "
                                f"({report['embedding_reason']}); set quantize_embedding: false to keep it float.")
        return PassOutput(path=path, signature=artifact.signature, report={**report, **nbits_facts(path)})


def nbits_facts(path: Path) -> dict[str, Any]:
    """What the kernel will see: the accuracy level written and the zero points' dtype (float ones, as HQQ writes
    them, keep MatMulNBits off its int8 path)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    nodes = [n for n in model.graph.node if n.op_type == "MatMulNBits"]
    if not nodes:
        return {}
    inits = {i.name: i for i in model.graph.initializer}
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in nodes[0].attribute}
    zp = inits.get(nodes[0].input[3]) if len(nodes[0].input) > 3 else None
    return {"accuracy_level_written": int(attrs.get("accuracy_level", 0)),
            "zero_points": "none" if zp is None else onnx.helper.tensor_dtype_to_np_dtype(zp.data_type).name}
