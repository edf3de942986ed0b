"""quantize.torch.static and quantize.torch.qat: int8 PT2E quantization of a PyTorch model (torchao).

Both write a torch.export program (.pt2) whose graph quantizes activations and dequantizes int8
weights around float aten ops (``quantized_decomposed`` q/dq ops): the weights are stored as int8,
the model runs on the torch runtime (eagerly as a reference graph, slower than float; torch.compile
with inductor lowers it to int8 kernels), and convert.onnx turns it into an ONNX QDQ model.

Quantizers: ``x86`` (X86InductorQuantizer: uint8 activations, int8 weights, per-channel by default)
or ``xnnpack`` (int8 symmetric, the ARM / mobile scheme; torchao keeps it only under
``torchao.testing``, since its real home moved to executorch).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field

from compressor.artifact import Artifact
from compressor.formats import Format
from compressor.passes.base import (
    PassConfig,
    PassContext,
    PassOutput,
    QuantizePass,
)


class TorchStaticQuantConfig(PassConfig):
    """Settings of ``quantize.torch.static``."""

    quantizer: Literal["x86", "xnnpack"] = Field("x86", description="PT2E quantizer: x86 inductor or xnnpack")
    per_channel: bool = Field(True, description="one weight scale per output channel (else per tensor)")
    batch_size: int = Field(32, ge=1, description="calibration batch size")


class TorchQatConfig(PassConfig):
    """Settings of ``quantize.torch.qat``."""

    quantizer: Literal["x86", "xnnpack"] = Field("x86", description="PT2E quantizer: x86 inductor or xnnpack")
    per_channel: bool = Field(True, description="one weight scale per output channel (xnnpack also allows per tensor)")
    epochs: int = Field(2, ge=1, description="fine-tuning epochs with fake quantization")
    lr: float = Field(1e-3, gt=0)
    batch_size: int = Field(64, ge=1)
    workers: int = Field(1, ge=1, description="data-parallel training workers through Ray Train (1: this process)")


def require_torchao(pass_name: str) -> None:
    from compressor.errors import PassError

    if importlib.util.find_spec("torchao") is None:
        raise PassError(f"pass '{pass_name}' needs torchao (PT2E quantization left torch for it in 2.x), which is "
                        f"not installed; pip install 'compressor[torch]' or pip install torchao.")


class QuantizeTorchStatic(QuantizePass):
    """Post-training static int8 (PT2E), calibrated on the calibration split; writes a .pt2 program."""

    name = "quantize.torch.static"
    version = 1
    config_class = TorchStaticQuantConfig
    input_formats: ClassVar[frozenset[Format]] = frozenset({Format.TORCH, Format.TORCH_EXPORT})
    output_format = Format.TORCH_EXPORT
    data_splits = ("calibration",)

    def check(self, artifact: Artifact, ctx: PassContext) -> None:
        super().check(artifact, ctx)
        require_torchao(self.name)

    def run(self, artifact: Artifact, ctx: PassContext, out_dir: Path) -> PassOutput:
        from compressor.passes.quantize._torch_pt2e import write_static

        path, report = write_static(artifact, self.config, ctx, out_dir)
        return PassOutput(path=path, signature=artifact.signature, meta={"quantized": "int8 pt2e"}, report=report)


