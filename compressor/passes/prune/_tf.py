"""Magnitude pruning of a tf-keras model with tensorflow-model-optimization (the Keras side of prune.magnitude).

tfmot works only with tf-keras (Keras 2) models; a Keras 3 model is refused before any work,
with the way out. tfmot prunes each layer to its own target sparsity; ``scope: global`` is
honoured by giving each layer the share that one global magnitude threshold gives it on the
input model's weights. Masks rise on a polynomial schedule (or are set at once) while the model
fine-tunes, and the pruning wrappers are stripped before the model is saved.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from compressor.artifact import Artifact
from compressor.frameworks._tf import require_tf_keras

if TYPE_CHECKING:
    from compressor.passes.base import PassContext
    from compressor.passes.prune.magnitude import MagnitudePruningConfig

PRUNABLE = ("Conv1D", "Conv2D", "Conv3D", "Dense", "DepthwiseConv2D")
MODEL_FILE = "model.h5"


def _load(artifact: Artifact) -> Any:
    from compressor.frameworks._tf import TF_KERAS, load_keras

    return load_keras(Path(artifact.path), TF_KERAS, artifact.meta.get("keras_custom"))


def _kernel(layer: Any) -> Any:
    return getattr(layer, "depthwise_kernel", None) if type(layer).__name__ == "DepthwiseConv2D" else layer.kernel


def select_layers(model: Any, config: MagnitudePruningConfig, pass_name: str) -> tuple[dict[str, Any], dict[str, str]]:
    """Prunable layers chosen by include / exclude, and why the others with weights were skipped."""
    from compressor.passes.prune.magnitude import choose_layers

    supported = {layer.name: layer for layer in model.layers if type(layer).__name__ in PRUNABLE}
    weighted = {layer.name: layer for layer in model.layers if layer.weights}
    names = {layer.name for layer in model.layers}
    return choose_layers(supported, weighted, names, list(PRUNABLE), config, pass_name)


def check_selection(artifact: Artifact, config: MagnitudePruningConfig, pass_name: str) -> None:
    """Refuse before any work: a Keras 3 model, or a selection the pass cannot honour."""
    require_tf_keras(artifact, pass_name)
    select_layers(_load(artifact), config, pass_name)


def layer_targets(layers: dict[str, Any], sparsity: float, scope: str) -> dict[str, float]:
    """Each layer's final sparsity: the same everywhere, or the share of one global magnitude threshold."""
    if scope == "layer" or sparsity <= 0:
        return {n: sparsity for n in layers}
    weights = {n: np.abs(_kernel(layer).numpy()).ravel() for n, layer in layers.items()}
    scores = np.sort(np.concatenate(list(weights.values())))
    threshold = scores[max(int(sparsity * scores.size) - 1, 0)]
    # tfmot needs a target below 1 for every layer it wraps
    return {n: float(min(np.mean(w <= threshold), 0.99)) for n, w in weights.items()}


def _schedule(config: MagnitudePruningConfig, target: float, total_steps: int) -> Any:
    import tensorflow_model_optimization as tfmot

    every = config.update_every_steps
    if config.schedule == "oneshot":
        return tfmot.sparsity.keras.ConstantSparsity(target, begin_step=0, frequency=every)
    # reach the final sparsity at ramp_fraction of fine-tuning; end on a multiple of the update interval
    end = max(every, int(total_steps * config.ramp_fraction) // every * every)
    return tfmot.sparsity.keras.PolynomialDecay(0.0, target, begin_step=0, end_step=end, frequency=every)


def _prune_at_once(layers: dict[str, Any], targets: dict[str, float]) -> None:
    """No fine-tuning: zero the smallest weights of each layer directly."""
    for name, layer in layers.items():
        kernel = _kernel(layer)
        w = kernel.numpy()
        k = int(targets[name] * w.size)
        if k:
            threshold = np.sort(np.abs(w).ravel())[k - 1]
            kernel.assign(np.where(np.abs(w) > threshold, w, 0.0).astype(w.dtype))


def sparsity_report(model: Any, names: list[str]) -> dict[str, Any]:
    per_layer, zeros, total = {}, 0, 0
    for layer in model.layers:
        if layer.name in names:
            w = _kernel(layer).numpy()
            per_layer[layer.name] = round(float(np.mean(w == 0)), 4)
            zeros, total = zeros + int(np.sum(w == 0)), total + w.size
    return {"sparsity": round(zeros / max(total, 1), 4), "per_layer": per_layer}


def magnitude_prune(artifact: Artifact, config: MagnitudePruningConfig, ctx: PassContext, out_dir: Path) -> dict[str, Any]:
    """Prune with tfmot while fine-tuning, strip the wrappers, save an .h5 (tf-keras) model."""
    from compressor.frameworks._tf import TF_KERAS, save_keras
    from compressor.passes._tf_fit import ends_in_softmax, fit_keras

    model = _load(artifact)
    layers, skipped = select_layers(model, config, "prune.magnitude")
    targets = layer_targets(layers, config.sparsity, config.scope)
    history: list[float] = []
    if config.finetune_epochs == 0:
        _prune_at_once(layers, targets)
        pruned = model
    else:
        import tensorflow_model_optimization as tfmot
        import tf_keras

        split = ctx.data.split("training", needed_by="prune.magnitude fine-tuning")
        total = -(-len(split) // config.batch_size) * config.finetune_epochs

        def wrap(layer: Any) -> Any:  # wraps the trained layer itself, so its weights carry over
            if layer.name not in layers:
                return layer
            return tfmot.sparsity.keras.prune_low_magnitude(
                layer, pruning_schedule=_schedule(config, targets[layer.name], total))

        wrapped = tf_keras.models.clone_model(model, clone_function=wrap)
        history = fit_keras(wrapped, split, artifact.signature, epochs=config.finetune_epochs, lr=config.lr,
                            batch_size=config.batch_size, seed=ctx.seed,
                            callbacks=[tfmot.sparsity.keras.UpdatePruningStep()], say=ctx.say,
                            from_logits=not ends_in_softmax(model))
        pruned = tfmot.sparsity.keras.strip_pruning(wrapped)
    save_keras(pruned, out_dir / MODEL_FILE)
    report = sparsity_report(pruned, list(layers))
    report.update(layers_pruned=len(layers), layers_skipped=skipped, layers_skipped_count=len(skipped),
                  finetune_loss=history, layer_targets={n: round(t, 4) for n, t in targets.items()},
                  keras=TF_KERAS)
    return report
