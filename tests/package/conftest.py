"""One small run of the digits sample (int8 ONNX and int8 TFLite, short benchmarks) with its
``package:`` section, shared by the package tests."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "digits_cnn"
TARGETS = ["onnxruntime:cpu", "litert:cpu"]


@pytest.fixture(scope="session")
def packaged_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """(the run folder, its results) of the digits sample's int8 variants packaged per target."""
    from compressor import run_pipeline
    from compressor.run.pipeline import parse_pipeline

    raw = yaml.safe_load((SAMPLE / "pipeline.yaml").read_text())
    raw["variants"] = {k: raw["variants"][k] for k in ("int8-onnx", "int8-tflite")}
    raw["targets"] = TARGETS
    raw["benchmark"] = {"batch_sizes": [1], "min_runs": 5, "min_seconds": 0.0, "warmup_runs": 1, "warmup_seconds": 0.0}
    raw["package"] = {"targets": TARGETS, "zip": True, "oci": True}
    out = tmp_path_factory.mktemp("packaged") / "run"
    results = run_pipeline(parse_pipeline(raw, SAMPLE), out, cache_dir=tmp_path_factory.mktemp("package-cache"))
    return out, results


@pytest.fixture(scope="session")
def packages(packaged_run: tuple[Path, dict[str, Any]]) -> dict[str, Path]:
    """Package folder by target."""
    out, results = packaged_run
    return {p["target"]: out / p["path"] for p in results["packages"]}
