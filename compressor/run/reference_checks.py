"""Checks on the reference model before any pass runs: its outputs can anchor the metric, its
classes cover the labels."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from compressor.artifact import Artifact
from compressor.errors import DataError
from compressor.measure.evaluate import Evaluator, predict_all

if TYPE_CHECKING:
    from compressor.run.pipeline import Pipeline

NEAR_ZERO = 1e-6  # a reference output no larger than this everywhere cannot anchor cosine / mse


def new_head_classes(pipeline: Pipeline) -> int:
    """The most classes a pass's new head gives the model (``train.finetune: {head: {num_classes}}``); 0 if none.

    Transfer learning scores labels the input model's own head cannot produce; they must fit the new head.
    """
    heads = [getattr(getattr(p, "config", None), "head", None) for passes in pipeline.variants.values() for p in passes]
    return max((int(getattr(h, "num_classes", 0) or 0) for h in heads if h is not None), default=0)


def scored_classes(evaluator: Evaluator, reference: Artifact) -> tuple[str, int]:
    """The scored output's name and its number of classes (from the signature, else from one batch)."""
    name, index = next(iter(evaluator.scored.items()))
    outputs = reference.signature.outputs
    dims = list(outputs[index].shape[1:]) if index < len(outputs) else [None]
    if all(isinstance(d, int) and d > 0 for d in dims) and not evaluator.split.feeding.axis(name):
        return name, int(np.prod(dims))
    batch = evaluator.split.take(evaluator.batch_size)
    out = predict_all(reference, batch, batch_size=evaluator.batch_size)[index]
    return name, int(np.prod(out.shape[1:]))


def check_reference_outputs(outputs: dict[str, np.ndarray], metric: str) -> None:
    """Refuse a reference whose outputs make a comparison meaningless: NaN/inf, near zero, or constant."""
    for name, out in outputs.items():
        x = np.asarray(out, dtype=np.float64)
        what = f"the reference model's output '{name}' on the {len(x)} evaluation samples"
        if not np.all(np.isfinite(x)):
            raise DataError(
                f"{what} holds {int((~np.isfinite(x)).sum())} NaN/inf values; check the input model and what it is "
                f"fed (data scaling, data.constants, state inputs) before comparing variants to it."
            )
        peak = float(np.max(np.abs(x))) if x.size else 0.0
        if peak < NEAR_ZERO:
            raise DataError(
                f"{what} is near zero everywhere (max |x| {peak:.2g} < {NEAR_ZERO:g}), so {metric} against it means "
                f"nothing; check what the model is fed (data.constants, scaling), or score other outputs (metric.outputs)."
            )
        if len(x) > 1 and float(np.max(np.abs(x - x[0]))) <= NEAR_ZERO * max(1.0, peak):
            raise DataError(
                f"{what} is the same for every sample, so {metric} against it cannot tell variants apart; check "
                f"that the data varies and reaches the model (data.constants, state inputs), or score other outputs "
                f"(metric.outputs)."
            )
