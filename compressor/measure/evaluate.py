"""Run artifacts on the evaluation split: the metric after every pass, and parity checks."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from compressor.artifact import Artifact
from compressor.data import DataBundle, Split, feeds_for
from compressor.errors import ConfigError, DataError
from compressor.metrics import Metric, cosine_rows, worst

log = logging.getLogger(__name__)

PARITY_SAMPLES = 32


@dataclass(frozen=True)
class Parity:
    """How far a child's outputs are from its parent's on the fixed parity batch."""

    max_abs_error: float
    cosine: float

    def to_dict(self) -> dict[str, float]:
        return {"max_abs_error": self.max_abs_error, "cosine": self.cosine}


def predict_all(artifact: Artifact, inputs: dict[str, np.ndarray] | Split, runtime: Any = None,
                device: str = "cpu", batch_size: int = 64, threads: int = 1) -> list[np.ndarray]:
    """Every output of ``artifact`` on every sample, concatenated over batches, samples first.

    ``inputs`` is a dict of arrays or a Split (whose constants and batch axes apply); an output
    whose batch axis is not the first (``data.batch_axis``) is joined on that axis, then moved first.
    """
    from backends import default_runtime

    split = inputs if isinstance(inputs, Split) else Split(inputs)
    runtime = runtime or default_runtime(artifact.format)
    batches: list[list[np.ndarray]] = []
    with runtime.open(artifact, device=device, threads=threads) as session:
        for batch, _ in split.batches(batch_size):
            batches.append(list(session.run(feeds_for(artifact.signature, batch, split.feeding))))
    names = [t.name for t in artifact.signature.outputs]
    return [_join([b[i] for b in batches], split.feeding.axis(names[i]) if i < len(names) else 0)
            for i in range(len(batches[0]))]


def _join(parts: list[np.ndarray], axis: int) -> np.ndarray:
    parts = [np.atleast_1d(np.asarray(p)) for p in parts]
    if axis and parts[0].ndim > axis:
        return np.moveaxis(np.concatenate(parts, axis=axis), axis, 0)
    return np.concatenate(parts)


def predict(artifact: Artifact, inputs: dict[str, np.ndarray] | Split, runtime: Any = None,
            device: str = "cpu", batch_size: int = 64, threads: int = 1) -> np.ndarray:
    """The first output of ``artifact`` on every sample, concatenated over batches."""
    return predict_all(artifact, inputs, runtime, device, batch_size, threads)[0]


def flat(outputs: dict[str, np.ndarray]) -> np.ndarray:
    """Scored outputs as one (samples, values) array, for error measures that span every output."""
    return np.concatenate([o.reshape(len(o), -1) for o in outputs.values()], axis=1)


class Evaluator:
    """Computes the pipeline metric of artifacts on the scored outputs.

    ``set_reference`` chooses the outputs (``outputs``, or the defaults of ``choose_outputs``) by
    position in the reference's signature, and keeps the reference's outputs for cosine / mse. With
    several scored outputs each is scored and the worst value is the metric.
    """

    def __init__(self, data: DataBundle, metric: Metric, batch_size: int = 64,
                 outputs: list[str] | None = None) -> None:
        self.data = data
        self.metric = metric
        self.batch_size = batch_size
        self.requested = outputs
        self.scored: dict[str, int] = {"output": 0}  # output name -> position in the model's outputs
        self.reference_outputs: dict[str, np.ndarray] | None = None

    @property
    def split(self):  # noqa: ANN201 - Split
        return self.data.split("evaluation", needed_by="the metric")

    def set_reference(self, artifact: Artifact) -> None:
        """Choose the scored outputs, and remember the reference's outputs (cosine and mse compare against them)."""
        names = [t.name for t in artifact.signature.outputs] or ["output"]
        self.scored = choose_outputs(self.metric, names, self.requested)
        if not self.metric.needs_labels:
            self.reference_outputs = self.outputs(artifact)

    def outputs(self, artifact: Artifact, runtime: Any = None, device: str = "cpu") -> dict[str, np.ndarray]:
        """The scored outputs of ``artifact`` on the evaluation split, by name (the reference's names)."""
        got = predict_all(artifact, self.split, runtime, device, self.batch_size)
        if max(self.scored.values()) >= len(got):
            raise DataError(
                f"'{artifact.path}' gives {len(got)} output(s) but the metric scores {sorted(self.scored)} "
                f"(output #{max(self.scored.values()) + 1}); name outputs the model keeps in metric.outputs."
            )
        return {name: got[i] for name, i in self.scored.items()}

    def score_detail(self, outputs: dict[str, np.ndarray]) -> dict[str, float]:
        """The metric of each scored output."""
        ref = self.reference_outputs or {}
        return {name: self.metric.fn(out, self.split.labels, ref.get(name)) for name, out in outputs.items()}

    def score_outputs(self, outputs: dict[str, np.ndarray]) -> float:
        """The metric: the worst over the scored outputs."""
        return worst(self.metric, self.score_detail(outputs))

    def evaluate(self, artifact: Artifact, runtime: Any = None, device: str = "cpu") -> float:
        """The metric of ``artifact`` on the evaluation split."""
        return self.score_outputs(self.outputs(artifact, runtime, device))

    def parity(self, parent: Artifact, child: Artifact) -> Parity:
        """Max abs error and mean cosine between parent and child on a fixed batch (worst scored output)."""
        batch = self.split.take(PARITY_SAMPLES)
        a_all = predict_all(parent, batch, batch_size=self.batch_size)
        b_all = predict_all(child, batch, batch_size=self.batch_size)
        pairs = [(a_all[i], b_all[i] if i < len(b_all) else np.zeros(0)) for i in self.scored.values()]
        return min((_parity(a, b) for a, b in pairs), key=lambda p: (-p.max_abs_error, p.cosine))


def _parity(a: np.ndarray, b: np.ndarray) -> Parity:
    if a.shape != b.shape:
        b = b.reshape(a.shape) if a.size == b.size else b
    if a.shape != b.shape:
        return Parity(float("inf"), 0.0)
    err = float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))
    return Parity(err, float(np.mean(cosine_rows(a, b))))


def choose_outputs(metric: Metric, names: list[str], requested: list[str] | None) -> dict[str, int]:
    """The outputs a metric scores: those named, else every output; a label metric scores exactly one."""
    if requested:
        unknown = [n for n in requested if n not in names]
        if unknown:
            raise ConfigError(f"metric.outputs names {unknown}, not outputs of the model {names}; fix the names.")
        if metric.needs_labels and len(requested) != 1:
            raise ConfigError(
                f"metric '{metric.name}' scores one classification output against the labels but metric.outputs "
                f"names {requested}; name one of them."
            )
        return {n: names.index(n) for n in requested}
    if metric.needs_labels and len(names) > 1:
        raise ConfigError(
            f"metric '{metric.name}' scores one classification output but the model has outputs {names}; "
            f"name it: metric: {{name: {metric.name}, outputs: [{names[0]}]}}."
        )
    return {n: i for i, n in enumerate(names)}
