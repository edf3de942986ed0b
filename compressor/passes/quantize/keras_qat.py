"""quantize.keras.qat: quantization-aware training of a tf-keras model (tensorflow-model-optimization).

The output is a tf-keras model holding fake-quantization wrappers with learned ranges; follow it
with ``convert.tflite: {quantize: int8}`` for the integer TFLite file.
"""
from __future__ import annotations

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


class KerasQatConfig(PassConfig):
    """Settings of ``quantize.keras.qat``."""

    epochs: int = Field(1, ge=1, description="epochs of quantization-aware fine-tuning on the training split")
    lr: float = Field(1e-4, gt=0, description="learning rate (small: the model is already trained)")
    batch_size: int = Field(64, ge=1)


class QuantizeKerasQat(QuantizePass):
    """Wrap the model with tfmot's default 8-bit scheme, fine-tune it, save it (tf-keras .h5)."""

    name = "quantize.keras.qat"
    version = 1
    config_class = KerasQatConfig
    input_formats: ClassVar[frozenset[Format]] = frozenset({Format.KERAS})
    data_splits = ("training",)

    def check(self, artifact: Artifact, ctx: PassContext) -> None:
        from compressor.passes.quantize._tf import check_qat

        super().check(artifact, ctx)
        check_qat(artifact, self.name)

    def run(self, artifact: Artifact, ctx: PassContext, out_dir: Path) -> PassOutput:
        from compressor.passes.quantize._tf import quantization_aware_training

        path, report = quantization_aware_training(artifact, self.config, ctx, out_dir)
        return PassOutput(path=path, signature=artifact.signature, report=report,
                          meta={"keras": "tf_keras", "keras_custom": "tfmot_qat"})
