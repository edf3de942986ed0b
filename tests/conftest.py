"""Shared fixtures: a tiny CNN trained on 8x8 digits once per session, pipeline builders."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

FAST_BENCH = {"batch_sizes": [1, 4], "threads": 1, "warmup_runs": 2, "warmup_seconds": 0.0,
              "min_runs": 5, "min_seconds": 0.0, "rounds": 3, "max_rounds": 4}


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Runs without --cache use the shared cache: point it at a folder of this test session, never ~/.cache."""
    import os

    path = tmp_path_factory.mktemp("shared-cache")
    saved = os.environ.get("COMPRESSOR_CACHE")
    os.environ["COMPRESSOR_CACHE"] = str(path)  # subprocesses (the CLI) inherit it
    yield path
    if saved is None:
        os.environ.pop("COMPRESSOR_CACHE", None)
    else:
        os.environ["COMPRESSOR_CACHE"] = saved


def train_tiny(path: Path, factory: str = "tests.tiny_models:TinyCNN", epochs: int = 6, **kwargs: Any) -> Path:
    import torch
    from safetensors.torch import save_file

    from compressor.artifact import BATCH, Signature, TensorSpec
    from compressor.data import load_bundle
    from compressor.frameworks._torch import build_module
    from compressor.passes._torch_fit import fit
    from compressor.run.pipeline import DataSpec

    torch.manual_seed(0)
    data = load_bundle(DataSpec(source="digits"))
    model = build_module(factory, kwargs)
    fit(model, data.split("training"), Signature((TensorSpec("input", (BATCH, 1, 8, 8)),)), epochs=epochs, lr=5e-3)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tiny(tmp_path_factory.mktemp("tiny") / "tiny.safetensors")


def pipeline_dict(weights: Path, variants: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    raw = {
        "name": "tiny",
        "model": {"factory": "tests.tiny_models:TinyCNN", "weights": str(weights)},
        "data": {"source": "digits", "calibration": {"split": "train", "limit": 64}},
        "metric": "accuracy",
        "budget": {"max_drop": 0.02},
        "variants": variants,
        "targets": ["onnxruntime:cpu"],
        "benchmark": dict(FAST_BENCH),
    }
    raw.update(overrides)
    return raw


def write_pipeline(tmp: Path, raw: dict[str, Any]) -> Path:
    path = tmp / "pipeline.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path
