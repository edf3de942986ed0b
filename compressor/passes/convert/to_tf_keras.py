"""convert.tf_keras: a Keras 3 model rebuilt as a tf-keras (Keras 2) model, for the tfmot passes.

tensorflow-model-optimization (prune.magnitude on Keras, quantize.keras.qat) takes only tf-keras
models. This pass rebuilds a Keras 3 Sequential / Functional model of built-in layers in tf-keras
from its config and weights; the run step's parity check proves the rebuild exact.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from compressor.artifact import Artifact
from compressor.formats import Format
from compressor.passes.base import Pass, PassConfig, PassContext, PassOutput


class ToTfKerasConfig(PassConfig):
    """Settings of ``convert.tf_keras``."""

    atol: float = Field(1e-5, gt=0, description="max abs error allowed vs the Keras 3 parent on the parity batch")


class ConvertTfKeras(Pass):
    """Keras 3 -> tf-keras; a tf-keras input passes through unchanged."""

    name = "convert.tf_keras"
    version = 1
    config_class = ToTfKerasConfig
    input_formats: ClassVar[frozenset[Format]] = frozenset({Format.KERAS})
    is_conversion = True

    def parity_tolerance(self) -> float | None:
        return self.config.atol

    def run(self, artifact: Artifact, ctx: PassContext, out_dir: Path) -> PassOutput:
        from compressor.frameworks._tf import TF_KERAS, keras_generation
        from compressor.passes.convert._keras2 import to_tf_keras

        generation = artifact.meta.get("keras") or keras_generation(Path(artifact.path))
        path = out_dir / f"model{Path(artifact.path).suffix}"
        if generation == TF_KERAS:
            shutil.copyfile(artifact.path, path)
            report = {"rebuilt": False, "note": "the model is already tf-keras"}
        else:
            path = out_dir / "model.h5"
            report = {"rebuilt": True, **to_tf_keras(artifact, path)}
        meta = {"keras": TF_KERAS, **({"keras_custom": artifact.meta["keras_custom"]}
                                      if "keras_custom" in artifact.meta else {})}
        return PassOutput(path=path, signature=artifact.signature, meta=meta, report=report)
