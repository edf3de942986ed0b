"""The digits_cnn sample runs end to end (small setting: 1 training epoch, short benchmarks)."""
from __future__ import annotations

from pathlib import Path

import yaml

from compressor import run_pipeline
from compressor.run.pipeline import parse_pipeline
from compressor.run.results import exit_code

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "digits_cnn"


def test_digits_sample_small(tmp_path: Path) -> None:
    from samples.digits_cnn.train import train

    weights = tmp_path / "w.safetensors"
    acc = train(weights, epochs=1)
    assert acc > 0.5
    raw = yaml.safe_load((SAMPLE / "pipeline.yaml").read_text())
    raw["model"]["weights"] = str(weights)
    raw["variants"]["pruned-int8-onnx"][0]["prune.magnitude"]["finetune_epochs"] = 1
    raw["benchmark"] = {"batch_sizes": [1], "min_runs": 5, "min_seconds": 0.0, "warmup_runs": 1, "rounds": 3, "max_rounds": 5}
    raw["targets"] = ["onnxruntime:cpu"]
    pipeline = parse_pipeline(raw, SAMPLE)
    assert set(pipeline.variants) == {"fp32-onnx", "int8-onnx", "int8-onnx-fast", "dynamic-int8-onnx", "pruned-int8-onnx", "fp32-tflite",
                                     "int8-tflite"}
    results = run_pipeline(pipeline, tmp_path / "out")
    assert exit_code(results, strict=True) == 0
    by = {v["name"]: v for v in results["variants"]}
    fp32 = by["fp32-onnx"]["artifact"]["size_bytes"]
    for name in ("int8-onnx", "int8-onnx-fast", "pruned-int8-onnx", "dynamic-int8-onnx"):
        assert by[name]["artifact"]["size_bytes"] <= 0.3 * fp32
    kept = by["int8-onnx-fast"]["ledger"][1]["report"]["kept_float_for_speed"]
    assert [k["reduction"] for k in kept] == [9] and len(kept[0]["nodes"]) == 3  # conv1, its relu and pool
    assert by["pruned-int8-onnx"]["ledger"][0]["report"]["sparsity"] >= 0.79
    # the dynamic variant's ConvInteger is slower than fp32 on CPU: when it is, it must say so
    for check in by["dynamic-int8-onnx"]["speed_checks"]:
        flagged = any("slower than its parent" in w and f"batch {check['batch_size']} " in w
                      for w in by["dynamic-int8-onnx"]["warnings"])
        assert (check["verdict"] == "slower") == flagged


def test_committed_weights_fit_the_model() -> None:
    from safetensors.torch import load_file

    from samples.digits_cnn.model import DigitsCNN

    DigitsCNN().load_state_dict(load_file(str(SAMPLE / "weights.safetensors")), strict=True)
