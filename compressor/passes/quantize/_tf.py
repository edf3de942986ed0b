"""Quantization-aware training with tensorflow-model-optimization (the Keras side of quantize.keras.qat)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from compressor.artifact import Artifact
from compressor.errors import PassError, first_line

if TYPE_CHECKING:
    from compressor.passes.base import PassContext
    from compressor.passes.quantize.keras_qat import KerasQatConfig

MODEL_FILE = "model.h5"


def check_qat(artifact: Artifact, pass_name: str) -> None:
    """Refuse a Keras 3 model, or a model already wrapped for QAT."""
    from compressor.frameworks._tf import require_tf_keras

    require_tf_keras(artifact, pass_name)
    if artifact.meta.get("keras_custom") == "tfmot_qat":
        raise PassError(f"{pass_name}: the model is already quantization-aware; remove the second {pass_name} step.")


def quantization_aware_training(artifact: Artifact, config: KerasQatConfig, ctx: PassContext, out_dir: Path) -> tuple[Path, dict[str, Any]]:
    """quantize_model (default 8-bit scheme), fine-tune, save as tf-keras .h5; the path and a report."""
    import tensorflow_model_optimization as tfmot

    from compressor.frameworks._tf import TF_KERAS, load_keras, save_keras
    from compressor.passes._tf_fit import ends_in_softmax, fit_keras

    model = load_keras(Path(artifact.path), TF_KERAS, artifact.meta.get("keras_custom"))
    from_logits = not ends_in_softmax(model)  # decided before the wrappers replace the activations
    try:
        qat = tfmot.quantization.keras.quantize_model(model)
    except (ValueError, RuntimeError) as exc:
        first = first_line(exc, 250)
        raise PassError(
            f"quantize.keras.qat: tfmot cannot wrap this model for QAT ({first}); it supports Sequential and "
            f"Functional tf-keras models of built-in layers."
        ) from None
    split = ctx.data.split("training", needed_by="quantize.keras.qat")
    history = fit_keras(qat, split, artifact.signature, epochs=config.epochs, lr=config.lr,
                        batch_size=config.batch_size, seed=ctx.seed, say=ctx.say, from_logits=from_logits)
    path = save_keras(qat, out_dir / MODEL_FILE)
    wrapped = sum(1 for layer in qat.layers if type(layer).__name__.startswith("QuantizeWrapper"))
    return path, {"finetune_loss": history, "layers_wrapped": wrapped, "keras": TF_KERAS}
