"""Metrics: compare a model's outputs to labels or to the reference model's outputs."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from compressor.errors import DataError, unknown_name


@dataclass(frozen=True)
class Metric:
    """A metric: how to compute it, which way is better, and whether it needs labels."""

    name: str
    fn: Callable[[np.ndarray, np.ndarray | None, np.ndarray | None], float]
    higher_is_better: bool = True
    needs_labels: bool = True
    labels: str = "class"  # what the labels are: class ids (one per sample) or next tokens (one per position)

    def drop(self, reference: float, value: float) -> float:
        """How much worse ``value`` is than ``reference`` (positive = worse)."""
        return reference - value if self.higher_is_better else value - reference


def _need_labels(labels: np.ndarray | None, name: str) -> np.ndarray:
    if labels is None:
        raise DataError(f"metric '{name}' needs labels but the evaluation split has none; add 'y' or use cosine / mse.")
    return labels


def _accuracy(outputs: np.ndarray, labels: np.ndarray | None, _ref: np.ndarray | None) -> float:
    labels = _need_labels(labels, "accuracy")
    return float(np.mean(np.argmax(outputs.reshape(len(outputs), -1), axis=1) == labels))


def _top5(outputs: np.ndarray, labels: np.ndarray | None, _ref: np.ndarray | None) -> float:
    labels = _need_labels(labels, "top5")
    top = np.argsort(-outputs.reshape(len(outputs), -1), axis=1)[:, :5]
    return float(np.mean(np.any(top == labels[:, None], axis=1)))


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of each sample's flattened output."""
    a = a.reshape(len(a), -1).astype(np.float64)
    b = b.reshape(len(b), -1).astype(np.float64)
    denom = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.sum(a * b, axis=1) / np.maximum(denom, 1e-12)


def _cosine(outputs: np.ndarray, _labels: np.ndarray | None, ref: np.ndarray | None) -> float:
    return float(np.mean(cosine_rows(outputs, ref)))


def _mse(outputs: np.ndarray, _labels: np.ndarray | None, ref: np.ndarray | None) -> float:
    return float(np.mean((outputs.astype(np.float64) - ref.astype(np.float64)) ** 2))


def log_softmax_rows(logits: np.ndarray) -> np.ndarray:
    """log p over the last axis, in float64 (stable: the row's max is subtracted first)."""
    x = logits.astype(np.float64)
    x -= x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def _perplexity(outputs: np.ndarray, labels: np.ndarray | None, _ref: np.ndarray | None) -> float:
    """Token-weighted perplexity: exp of the mean negative log-likelihood of every label token."""
    if labels is None or labels.shape != outputs.shape[:-1]:
        shown = None if labels is None else list(labels.shape)
        raise DataError(
            f"metric 'perplexity' needs next-token labels of shape {list(outputs.shape[:-1])} (samples x positions) "
            f"beside logits {list(outputs.shape)}, got {shown}; use data source 'text'."
        )
    nll, count = 0.0, 0
    for row_logits, row_labels in zip(outputs, labels):  # one sample at a time: a float64 copy of all logits is big
        logp = log_softmax_rows(row_logits)
        nll -= float(np.take_along_axis(logp, row_labels[:, None].astype(np.int64), axis=-1).sum())
        count += row_labels.size
    return float(np.exp(nll / max(count, 1)))


def greedy_agreement(tokens: list[int] | np.ndarray, reference: list[int] | np.ndarray) -> float:
    """The share of the reference's greedy tokens that ``tokens`` matches position by position.

    Positions past the end of ``tokens`` count as misses, so a shorter generation cannot score higher.
    """
    ref = np.asarray(reference)
    if ref.size == 0:
        return 1.0
    got = np.asarray(tokens)[: ref.size]
    return float(np.sum(got == ref[: got.size]) / ref.size)


METRICS: dict[str, Metric] = {
    "accuracy": Metric("accuracy", _accuracy),
    "top5": Metric("top5", _top5),
    "cosine": Metric("cosine", _cosine, higher_is_better=True, needs_labels=False),
    "mse": Metric("mse", _mse, higher_is_better=False, needs_labels=False),
    "perplexity": Metric("perplexity", _perplexity, higher_is_better=False, labels="tokens"),
}


def worst(metric: Metric, values: dict[str, float]) -> float:
    """The worst of several outputs' values: the lowest where higher is better, else the highest."""
    return min(values.values()) if metric.higher_is_better else max(values.values())


def get_metric(name: str) -> Metric:
    """A built-in metric, or ``pkg.mod:fn`` taking (outputs, labels) and returning higher-is-better."""
    if name in METRICS:
        return METRICS[name]
    if ":" in name:
        from compressor.code import load_attr

        fn = load_attr(name)
        return Metric(name, lambda out, labels, _ref: float(fn(out, labels)))
    raise unknown_name("metric", name, METRICS, "Or give 'package.module:fn'.")
