"""Sentence classification on top of embeddings: leave-one-out nearest-centroid accuracy.

Each sentence is assigned the topic whose centroid (mean of the other sentences of that topic,
computed from the same variant's embeddings) is most similar to it. No training step: a variant
whose embeddings keep the topic structure scores like the float model.

    metric: samples.minilm.metrics:centroid_accuracy
"""
from __future__ import annotations

import numpy as np


def centroid_accuracy(embeddings: np.ndarray, labels: np.ndarray) -> float:
    """Leave-one-out nearest-centroid accuracy of ``embeddings`` (N x D) against ``labels``."""
    x = embeddings.reshape(len(embeddings), -1).astype(np.float64)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    classes = np.unique(labels)
    sums = np.stack([x[labels == c].sum(0) for c in classes])
    counts = np.array([(labels == c).sum() for c in classes], dtype=np.float64)
    correct = 0
    for i, (row, label) in enumerate(zip(x, labels)):
        own = classes == label
        centroids = sums - np.where(own[:, None], row[None, :], 0.0)  # leave this sentence out
        n = counts - own
        centroids = centroids / np.maximum(n, 1)[:, None]
        centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
        correct += int(classes[np.argmax(centroids @ row)] == label)
    return correct / len(x)
