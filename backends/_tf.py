"""TensorFlow: load Keras models (both generations) and SavedModels, and run them.

Two Keras generations live side by side. Keras 3 (``import keras``) is what TensorFlow 2.16+
uses for ``tf.keras``; tf-keras (``import tf_keras``, Keras 2) is what
tensorflow-model-optimization needs. A model file says which one wrote it (the ``keras_version``
in a .keras archive's metadata.json or an .h5 file's attributes); this module always loads a model
with the generation that wrote it and never goes through ``tf.keras``, whose meaning depends on
the ``TF_USE_LEGACY_KERAS`` environment variable (importing tfmot sets it process-wide).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from backends.base import Runtime, Session
from compressor.frameworks._tf import (
    KERAS3,
    TFMOT_QAT,
    keras_call,
    keras_generation,
    load_keras,
    load_saved_model,
    quiet_tensorflow,
)

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- which Keras wrote a file


# ---------------------------------------------------------------- signatures


# ---------------------------------------------------------------- the runtime

def set_threads(threads: int) -> None:
    """Pin TensorFlow's thread pools; only possible before TF runs its first op in this process."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        # Already initialised (evaluation in the main process). Measurements run in a fresh
        # process with TF_NUM_INTRAOP_THREADS set, where this call takes effect.
        log.debug("TensorFlow threads already fixed for this process; keeping them")


class TfSession(Session):
    """A Keras model or SavedModel signature behind one ``run``."""

    def __init__(self, fn: Any, input_names: list[str], keep: Any = None, output_names: list[str] | None = None) -> None:
        self._fn = fn
        self._keep = keep  # the loaded SavedModel owns the variables; keep it alive
        self.input_names = input_names
        self._output_names = output_names

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        import tensorflow as tf

        if self._output_names is None:  # Keras: positional inputs, list of outputs
            outs = self._fn(*[tf.constant(feeds[n]) for n in self.input_names])
            return [o.numpy() for o in outs]
        outs = self._fn(**{n: tf.constant(feeds[n]) for n in self.input_names})
        return [outs[n].numpy() for n in self._output_names]

    def close(self) -> None:
        self._fn = self._keep = None


class TensorflowRuntime(Runtime):
    name = "tensorflow"
    formats = ("keras", "saved_model")
    devices = ("cpu",)
    package = "tensorflow"
    install_hint = "pip install 'compressor[tf]'"

    def preload(self, artifact: Any) -> None:
        """Import what opening ``artifact`` needs, so a measurement's cold start does not count imports."""
        quiet_tensorflow()
        import tensorflow  # noqa: F401

        if str(artifact.format) == "keras":
            generation = artifact.meta.get("keras") or keras_generation(Path(artifact.path))
            if generation == KERAS3:
                import keras  # noqa: F401
            else:
                import tf_keras  # noqa: F401
            if artifact.meta.get("keras_custom") == TFMOT_QAT:
                import tensorflow_model_optimization  # noqa: F401

    def open(self, artifact: Any, device: str = "cpu", threads: int = 1, **options: Any) -> TfSession:
        quiet_tensorflow()
        set_threads(threads)
        path = Path(artifact.path)
        if str(artifact.format) == "saved_model":
            loaded, fn = load_saved_model(path)
            return TfSession(fn, artifact.signature.input_names, keep=loaded,
                             output_names=[o.name for o in artifact.signature.outputs])
        model = load_keras(path, artifact.meta.get("keras"), artifact.meta.get("keras_custom"))
        return TfSession(keras_call(model, artifact.signature), artifact.signature.input_names, keep=model)
