"""quantize.torch.smoothquant: SmoothQuant int8 through neural-compressor — refused unless IPEX is present.

neural-compressor 3.x runs SmoothQuant on CPU only through intel_extension_for_pytorch (IPEX):
without it, ``prepare`` fails with ``No module named 'intel_extension_for_pytorch'``. IPEX's latest
release (2.8.0) installs beside torch 2.13 but refuses to import: "Intel Extension for PyTorch needs
to work with PyTorch 2.8.*, but PyTorch 2.13.0+cpu is found" (checked 2026-11-28). So ``check``
refuses the pass with that reason. Even where
IPEX is installed, its result is an IPEX TorchScript module, which no compressor format stores
(artifacts are safetensors, .pt2, ONNX...), so ``run`` refuses too rather than pickle code.
For int8 weights and activations use quantize.torch.static (PT2E) or quantize.onnx.static.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from compressor.artifact import Artifact
from compressor.formats import Format
from compressor.passes.base import (
    PassConfig,
    PassContext,
    PassOutput,
    QuantizePass,
)

ALTERNATIVE = "use quantize.torch.static (PT2E int8) or convert.onnx + quantize.onnx.static instead"


class TorchSmoothQuantConfig(PassConfig):
    """Settings of ``quantize.torch.smoothquant``."""

    alpha: float = Field(0.5, ge=0, le=1, description="migration strength of activation outliers into weights")


class QuantizeTorchSmoothquant(QuantizePass):
    """SmoothQuant (neural-compressor); needs intel_extension_for_pytorch, refused without it."""

    name = "quantize.torch.smoothquant"
    version = 1
    config_class = TorchSmoothQuantConfig
    input_formats: ClassVar[frozenset[Format]] = frozenset({Format.TORCH})
    data_splits = ("calibration",)

    def check(self, artifact: Artifact, ctx: PassContext) -> None:
        from compressor.errors import PassError

        super().check(artifact, ctx)
        if importlib.util.find_spec("intel_extension_for_pytorch") is None:
            raise PassError(
                f"pass '{self.name}': neural-compressor runs SmoothQuant only through intel_extension_for_pytorch "
                f"(IPEX), which is not installed (its latest release, 2.8, is built for torch 2.8, not the pinned torch 2.13); "
                f"{ALTERNATIVE}."
            )

    def run(self, artifact: Artifact, ctx: PassContext, out_dir: Path) -> PassOutput:
        from compressor.errors import PassError

        raise PassError(
            f"pass '{self.name}': neural-compressor's SmoothQuant result is an IPEX TorchScript module, which no "
            f"compressor artifact format can hold; {ALTERNATIVE}."
        )
