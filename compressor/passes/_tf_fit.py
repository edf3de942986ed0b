"""The one Keras training loop (either generation), shared by pruning, QAT and the samples.

Unlike torch (see ``_torch_fit``), TensorFlow fixes its thread pools when its runtime starts and
refuses to change them afterwards, so nothing run earlier in the process can change how ``fit_keras``
trains: there is nothing to pin here. The pools follow the machine's cores; the cache lives on one
machine by default, and ``training_threads`` (in every training pass's key) tells small machines apart.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from compressor.data import Split, feeds_for


def ends_in_softmax(model: Any) -> bool:
    """Whether the model outputs probabilities (last layer softmax) rather than logits."""
    last = model.layers[-1]
    while hasattr(last, "layer"):  # tfmot wrappers (PruneLowMagnitude, QuantizeWrapper) hold the layer
        last = last.layer
    if type(last).__name__ == "Softmax":
        return True
    activation = getattr(last, "activation", None)
    return getattr(activation, "__name__", str(activation)) == "softmax"


def keras_module_of(model: Any) -> Any:
    """``keras`` or ``tf_keras``: the package the model's classes come from."""
    if type(model).__module__.startswith("tf_keras"):
        import tf_keras

        return tf_keras
    import keras

    return keras


def fit_keras(
    model: Any,
    split: Split,
    signature: Any,
    *,
    epochs: int,
    lr: float = 1e-3,
    batch_size: int = 64,
    seed: int = 0,
    callbacks: list[Any] | None = None,
    say: Callable[[str], None] | None = None,
    from_logits: bool | None = None,
) -> list[float]:
    """Train ``model`` in place with Adam and sparse cross entropy on the split's labels; epoch losses.

    ``from_logits`` defaults to "the last layer is not a softmax"; wrappers that replace activations
    (tfmot QAT) hide that, so callers wrapping a model decide it on the unwrapped model.
    """
    from compressor.errors import DataError

    if split.labels is None:
        raise DataError("training needs labels, but the training split has none; add 'y' to the data.")
    k = keras_module_of(model)
    k.utils.set_random_seed(seed)
    feeds = feeds_for(signature, split.inputs)
    x = [feeds[n] for n in signature.input_names]
    if from_logits is None:
        from_logits = not ends_in_softmax(model)
    loss = k.losses.SparseCategoricalCrossentropy(from_logits=from_logits)
    model.compile(optimizer=k.optimizers.Adam(learning_rate=lr), loss=loss)
    history: list[float] = []

    class Report(k.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            history.append(float((logs or {}).get("loss", np.nan)))
            if say is not None:
                say(f"epoch {epoch + 1}/{epochs} loss {history[-1]:.4f}")

    model.fit(x[0] if len(x) == 1 else x, split.labels, epochs=epochs, batch_size=batch_size, shuffle=True,
              verbose=0, callbacks=[*(callbacks or []), Report()])
    return history
