"""The keras_mnist sample runs end to end (small setting: 1 fine-tuning epoch, no latency measurements)."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "keras_mnist"

pytest.importorskip("tensorflow")


def test_keras_mnist_sample_small(tmp_path: Path) -> None:
    from compressor import run_pipeline
    from compressor.run.pipeline import parse_pipeline
    from compressor.run.results import exit_code

    raw = yaml.safe_load((SAMPLE / "pipeline.yaml").read_text())
    raw["variants"]["pruned80-tflite-int8"][0]["prune.magnitude"]["finetune_epochs"] = 1
    pipeline = parse_pipeline(raw, SAMPLE)
    assert set(pipeline.variants) == {"tflite-fp32", "tflite-fp16", "tflite-dynamic", "tflite-int8",
                                      "pruned80-tflite-int8", "qat-tflite-int8", "onnx-int8"}
    results = run_pipeline(pipeline, tmp_path / "out", benchmark=False)
    assert exit_code(results, strict=True) == 0
    assert results["reference"]["format"] == "keras" and results["reference"]["metric"] > 0.9
    by = {v["name"]: v for v in results["variants"]}
    for v in by.values():
        assert v["status"] == "ok" and v["within_budget"], (v["name"], v.get("error"), v["metric_drop"])
        for entry in v["ledger"]:  # every hop: its metric, and parity for conversions
            assert entry["metric"] is not None
            assert (entry["parity"] is not None) == entry["pass"].startswith("convert.")
    fp32 = by["tflite-fp32"]["artifact"]["size_bytes"]
    for name in ("tflite-int8", "pruned80-tflite-int8", "qat-tflite-int8"):
        assert by[name]["artifact"]["size_bytes"] <= 0.3 * fp32
        assert by[name]["ledger"][-1]["report"]["int8_share"] == 1.0
    assert by["tflite-fp32"]["ledger"][0]["parity"]["max_abs_error"] <= 1e-4
    assert by["pruned80-tflite-int8"]["ledger"][0]["report"]["sparsity"] >= 0.79


def test_committed_model_is_tf_keras() -> None:
    from compressor.frameworks._tf import keras_generation

    assert keras_generation(SAMPLE / "model.h5") == "tf_keras"
