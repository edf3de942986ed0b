"""quantize.torch.dynamic: int8 Linear (and LSTM / GRU) weights via torch.ao dynamic quantization.

Output format: a torch model folder (factory + float safetensors) whose model.json carries the
recipe ``post_load: quantize_dynamic``; loading re-applies it, so the int8 modules are rebuilt
exactly (dynamic quantization is a pure function of the float weights). It runs on the torch
runtime. It is not exportable to ONNX: torch.onnx cannot export torch.ao's packed int8 modules,
and convert.onnx says so — for ONNX, convert first and use quantize.onnx.dynamic.
"""
from __future__ import annotations

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


class TorchDynamicQuantConfig(PassConfig):
    """Settings of ``quantize.torch.dynamic``."""

    layers: list[Literal["Linear", "LSTM", "GRU"]] = Field(default_factory=lambda: ["Linear"])
    dtype: Literal["qint8", "float16"] = "qint8"


class QuantizeTorchDynamic(QuantizePass):
    """int8 weights, activations quantized at run time, on PyTorch's CPU kernels."""

    name = "quantize.torch.dynamic"
    version = 1
    config_class = TorchDynamicQuantConfig
    input_formats: ClassVar[frozenset[Format]] = frozenset({Format.TORCH})

    def check(self, artifact: Artifact, ctx: PassContext) -> None:
        from compressor.errors import PassError
        from compressor.frameworks._torch import load_module
        from compressor.passes.quantize._torch import count_layers

        super().check(artifact, ctx)
        if count_layers(load_module(Path(artifact.path)), self.config.layers) == 0:
            raise PassError(
                f"pass '{self.name}': the model has no {' / '.join(self.config.layers)} layer to quantize; "
                f"dynamic quantization covers Linear, LSTM and GRU (for convolutions use quantize.onnx.static)."
            )

    def run(self, artifact: Artifact, ctx: PassContext, out_dir: Path) -> PassOutput:
        from compressor.passes.quantize._torch import write_dynamic

        path, report = write_dynamic(artifact, self.config, out_dir)
        return PassOutput(path=path, signature=artifact.signature, meta={"exportable_to_onnx": False}, report=report)
