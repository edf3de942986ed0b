"""Reading a Keras file: which Keras wrote it, signature, parameters, weight sparsity, layer histogram."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np


def inspect_keras(path: Path) -> dict[str, Any]:
    from backends._tf import keras_generation, keras_signature, load_keras

    generation = keras_generation(path)
    model = load_keras(path, generation)
    kernels = [w.numpy() for layer in model.layers for w in layer.weights if "kernel" in w.name]
    zeros = sum(int(np.sum(k == 0)) for k in kernels)
    total = sum(k.size for k in kernels)
    signature = keras_signature(model)
    return {
        "keras": generation,
        "inputs": [{"name": s.name, "shape": list(s.shape), "dtype": s.dtype} for s in signature.inputs],
        "outputs": [{"name": s.name, "shape": list(s.shape), "dtype": s.dtype} for s in signature.outputs],
        "layout": signature.layout,
        "parameters": int(model.count_params()),
        "weight_sparsity": round(zeros / total, 4) if total else 0.0,
        "layers": dict(Counter(type(layer).__name__ for layer in model.layers).most_common()),
    }
