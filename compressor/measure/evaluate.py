"""Run artifacts on the evaluation split: the metric after every pass, and parity checks."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from compressor.artifact import Artifact
from compressor.data import DataBundle, feeds_for
from compressor.metrics import Metric, cosine_rows

log = logging.getLogger(__name__)

PARITY_SAMPLES = 32


@dataclass(frozen=True)
class Parity:
    """How far a child's outputs are from its parent's on the fixed parity batch."""

    max_abs_error: float
    cosine: float

    def to_dict(self) -> dict[str, float]:
        return {"max_abs_error": self.max_abs_error, "cosine": self.cosine}


def predict(artifact: Artifact, inputs: dict[str, np.ndarray], runtime: Any = None,
            device: str = "cpu", batch_size: int = 64, threads: int = 1) -> np.ndarray:
    """The first output of ``artifact`` on every sample, concatenated over batches."""
    from backends import default_runtime
    from compressor.data import Split

    runtime = runtime or default_runtime(artifact.format)
    split = Split(inputs)
    outs = []
    with runtime.open(artifact, device=device, threads=threads) as session:
        for batch, _ in split.batches(batch_size):
            outs.append(session.run(feeds_for(artifact.signature, batch))[0])
    return np.concatenate(outs)


class Evaluator:
    """Computes the pipeline metric of artifacts, keeping the reference outputs for cosine / mse."""

    def __init__(self, data: DataBundle, metric: Metric, batch_size: int = 64) -> None:
        self.data = data
        self.metric = metric
        self.batch_size = batch_size
        self.reference_outputs: np.ndarray | None = None

    @property
    def split(self):  # noqa: ANN201 - Split
        return self.data.split("evaluation", needed_by="the metric")

    def set_reference(self, artifact: Artifact) -> None:
        """Remember the reference model's outputs (cosine and mse compare against them)."""
        if not self.metric.needs_labels:
            self.reference_outputs = self.outputs(artifact)

    def outputs(self, artifact: Artifact, runtime: Any = None, device: str = "cpu") -> np.ndarray:
        return predict(artifact, self.split.inputs, runtime, device, self.batch_size)

    def score_outputs(self, outputs: np.ndarray) -> float:
        return self.metric.fn(outputs, self.split.labels, self.reference_outputs)

    def evaluate(self, artifact: Artifact, runtime: Any = None, device: str = "cpu") -> float:
        """The metric of ``artifact`` on the evaluation split."""
        return self.score_outputs(self.outputs(artifact, runtime, device))

    def parity(self, parent: Artifact, child: Artifact) -> Parity:
        """Max abs error and mean cosine between parent and child on a fixed batch."""
        batch = self.split.take(PARITY_SAMPLES).inputs
        a = predict(parent, batch)
        b = predict(child, batch)
        if a.shape != b.shape:
            b = b.reshape(a.shape) if a.size == b.size else b
        if a.shape != b.shape:
            return Parity(float("inf"), 0.0)
        err = float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))
        return Parity(err, float(np.mean(cosine_rows(a, b))))
