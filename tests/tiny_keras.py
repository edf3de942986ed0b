"""Tiny Keras models built in code (both generations), trained once per test session on 8x8 digits.

TensorFlow is slow to import (5-10 s), so every model is built and trained once and cached by its
arguments; tests share the files. Each test module asks for them through its own fixtures.
"""
from __future__ import annotations

import functools
import tempfile
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(tempfile.mkdtemp(prefix="compressor-keras-tests-"))
FAST_BENCH = {"batch_sizes": [1, 4], "threads": 1, "warmup_runs": 1, "warmup_seconds": 0.0,
              "min_runs": 5, "min_seconds": 0.0}


def build(generation: str, softmax: bool = False) -> Any:
    """conv(8, 3x3, relu) pool, flatten, dense(32, relu), dense(10) on 8x8x1 NHWC images."""
    from compressor.frameworks._tf import quiet_tensorflow

    quiet_tensorflow()
    if generation == "keras3":
        import keras as k
    else:
        import tf_keras as k
    return k.Sequential([
        k.Input((8, 8, 1), name="image"),
        k.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv"),
        k.layers.MaxPooling2D(2, name="pool"),
        k.layers.Flatten(name="flatten"),
        k.layers.Dense(32, activation="relu", name="fc1"),
        k.layers.Dense(10, activation="softmax" if softmax else None, name="fc2"),
    ])


@functools.lru_cache(maxsize=None)
def trained(generation: str = "keras3", suffix: str = ".keras", epochs: int = 6) -> Path:
    """A trained tiny CNN saved by ``generation`` (keras3 | tf_keras) as .keras or .h5; cached."""
    from compressor.data import load_bundle
    from compressor.frameworks._tf import keras_signature
    from compressor.passes._tf_fit import fit_keras
    from compressor.run.pipeline import DataSpec

    model = build(generation)
    data = load_bundle(DataSpec(source="digits"))
    fit_keras(model, data.split("training"), keras_signature(model), epochs=epochs, lr=5e-3, batch_size=32)
    path = ROOT / f"{generation}{suffix}"
    model.save(str(path))
    return path


@functools.lru_cache(maxsize=None)
def saved_model() -> Path:
    """The trained Keras 3 model exported as a SavedModel folder (serving_default signature)."""
    from compressor.frameworks._tf import load_keras

    path = ROOT / "saved_model"
    load_keras(trained("keras3")).export(str(path), verbose=False)
    return path


def keras_pipeline(model: Path, variants: dict[str, Any] | None = None, **overrides: Any) -> dict[str, Any]:
    raw = {
        "name": "tiny-keras",
        "model": {"path": str(model)},
        "data": {"source": "digits", "calibration": {"split": "train", "limit": 64}},
        "metric": "accuracy",
        "budget": {"max_drop": 0.02},
        "variants": variants or {"a": ["convert.tflite"]},
        "targets": ["litert:cpu"],
        "benchmark": dict(FAST_BENCH),
    }
    raw.update(overrides)
    return raw


def keras_runner(tmp_path: Path, model: Path, **data: Any) -> Any:
    """A run context whose reference is the Keras / SavedModel / TFLite file ``model``, ready for ``apply``."""
    from tests.pass_context import context_for

    raw = keras_pipeline(model)
    raw["data"].update(data)
    return context_for(tmp_path, raw)


def step(runner: Any, name: str, config: dict[str, Any] | None = None, parent: Any = None) -> Any:
    """Apply one pass through the runner (check, run, cache, parity, metric); return (artifact, entry)."""
    from compressor.passes.registry import build_pass
    from compressor.run.step import apply_pass

    result = apply_pass(runner, parent or runner.reference, build_pass(name, config or {}), "t", 0)
    return result.artifact, result.entry


def write_yaml(tmp: Path, raw: dict[str, Any]) -> Path:
    path = tmp / "pipeline.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path
