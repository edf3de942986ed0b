"""quantize.torch.qat: int8 PT2E quantization-aware training on the training split (torchao); .pt2."""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from compressor.artifact import Artifact
from compressor.formats import Format
from compressor.passes.base import (
    PassContext,
    PassOutput,
    QuantizePass,
)
from compressor.passes.quantize.torch_static import TorchQatConfig, require_torchao


class QuantizeTorchQat(QuantizePass):
    """Quantization-aware training (PT2E fake quantization, fine-tuned on the training split); a .pt2 program."""

    name = "quantize.torch.qat"
    version = 1
    config_class = TorchQatConfig
    input_formats: ClassVar[frozenset[Format]] = frozenset({Format.TORCH})
    output_format = Format.TORCH_EXPORT
    data_splits = ("training",)

    def check(self, artifact: Artifact, ctx: PassContext) -> None:
        from compressor.errors import ConfigError

        super().check(artifact, ctx)
        if self.config.quantizer == "x86" and not self.config.per_channel:
            raise ConfigError(
                f"pass '{self.name}': per_channel: false is not available with quantizer x86 (its QAT scheme has "
                f"per-channel weights only); keep per_channel: true or use quantizer: xnnpack."
            )
        require_torchao(self.name)

    def run(self, artifact: Artifact, ctx: PassContext, out_dir: Path) -> PassOutput:
        from compressor.passes.quantize._torch_pt2e import write_qat

        path, report = write_qat(artifact, self.config, ctx, out_dir)
        return PassOutput(path=path, signature=artifact.signature, meta={"quantized": "int8 pt2e qat"}, report=report)
