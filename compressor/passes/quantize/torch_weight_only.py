"""quantize.torch.weight_only: int4 / int8 group-wise Linear weights via neural-compressor (RTN, GPTQ, AWQ).

What it stores, honestly: a torch model folder with the same factory whose Linear weights are the
quantized weights *dequantized back to float32*. Every (row, group) of a quantized weight holds at
most 2**bits distinct values, so the model computes exactly what neural-compressor's own
``INCWeightOnlyLinear`` computes on CPU (which unpacks to float and calls ``F.linear``; it has no int4
kernel). The file does not shrink and nothing runs faster: this pass measures the accuracy of
weight-only quantization (and GPTQ / AWQ's recovery of it) before deployment. For a smaller file
with int4 kernels, use convert.onnx and then quantize.onnx.weight_only (MatMulNBits).

Algorithms: ``rtn`` (round to nearest, no data), ``gptq`` (second-order error compensation,
calibrated on the calibration split), ``awq`` (activation-aware scales, calibrated). GPTQ and AWQ
in neural-compressor walk an LLM's stack of blocks, so they need the repeated blocks held in an
``nn.ModuleList`` (``model.layers[i]``); a flat model is refused with that reason.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from compressor.artifact import Artifact
from compressor.formats import Format
from compressor.passes.base import (
    PassConfig,
    PassContext,
    PassOutput,
    QuantizePass,
)


class TorchWeightOnlyConfig(PassConfig):
    """Settings of ``quantize.torch.weight_only``."""

    algorithm: Literal["rtn", "gptq", "awq"] = Field("rtn", description="rtn (no data), gptq or awq (calibrated)")
    bits: Literal[4, 8] = 4
    group_size: int = Field(32, description="input columns sharing one scale; -1: one scale per output row")
    symmetric: bool = Field(True, description="symmetric int grid (no zero point)")
    batch_size: int = Field(32, ge=1, description="calibration batch size (gptq, awq)")

    @field_validator("group_size")
    @classmethod
    def _group(cls, value: int) -> int:
        if value != -1 and value < 1:
            raise ValueError("must be -1 (per output row) or a positive number of columns")
        return value

    @model_validator(mode="after")
    def _no_ignored_keys(self) -> TorchWeightOnlyConfig:
        self.only_with(("batch_size",), self.algorithm in ("gptq", "awq"), "algorithm: gptq or awq")
        return self


def require_inc(pass_name: str) -> None:
    from compressor.errors import PassError

    if importlib.util.find_spec("neural_compressor") is None:
        raise PassError(f"pass '{pass_name}' needs neural-compressor, which is not installed; "
                        f"pip install 'compressor[inc]'.")


class QuantizeTorchWeightOnly(QuantizePass):
    """Weight-only int4 / int8 quantization of Linear layers (neural-compressor), stored dequantized."""

    name = "quantize.torch.weight_only"
    version = 1
    config_class = TorchWeightOnlyConfig
    input_formats: ClassVar[frozenset[Format]] = frozenset({Format.TORCH})
    data_splits = ("calibration",)

    def check(self, artifact: Artifact, ctx: PassContext) -> None:
        from compressor.errors import PassError
        from compressor.frameworks._torch import load_module
        from compressor.passes.quantize._torch_inc import count_linear, has_blocks

        super().check(artifact, ctx)
        require_inc(self.name)
        module = load_module(Path(artifact.path))
        if count_linear(module) == 0:
            raise PassError(f"pass '{self.name}': the model has no nn.Linear layer; weight-only quantization covers "
                            f"Linear weights (for convolutions use quantize.torch.static).")
        if self.config.algorithm in ("gptq", "awq") and not has_blocks(module):
            raise PassError(
                f"pass '{self.name}': algorithm {self.config.algorithm} (neural-compressor) needs the model's repeated "
                f"blocks in an nn.ModuleList (as in LLMs: model.layers[i]), and {type(module).__name__} has none; "
                f"use algorithm: rtn."
            )

    def run(self, artifact: Artifact, ctx: PassContext, out_dir: Path) -> PassOutput:
        from compressor.passes.quantize._torch_inc import write_weight_only

        path, report = write_weight_only(artifact, self.config, ctx, out_dir)
        meta = {"weights": f"int{self.config.bits} grid, stored as float32"}
        return PassOutput(path=path, signature=artifact.signature, meta=meta, report=report)
