"""benchmark.ledger_steps: every intermediate artifact is measured and each ledger step shows its latency."""
from __future__ import annotations

from compressor import run_pipeline
from compressor.run.pipeline import parse_pipeline
from tests.conftest import pipeline_dict


def test_ledger_steps_measures_every_step(tmp_path, tiny_weights) -> None:
    variants = {"p": [{"prune.magnitude": {"sparsity": 0.5}}, "convert.onnx"]}
    raw = pipeline_dict(tiny_weights, variants, targets=["onnxruntime:cpu", "torch:cpu"])
    raw["benchmark"].update(batch_sizes=[1], ledger_steps=True)
    results = run_pipeline(parse_pipeline(raw, tmp_path), tmp_path / "steps")
    ledger = results["variants"][0]["ledger"]
    assert [b["runtime"] for b in ledger[0]["benchmarks"]] == ["torch"]
    assert [b["runtime"] for b in ledger[1]["benchmarks"]] == ["onnxruntime"]
    assert all(b["p50_ms"] > 0 for e in ledger for b in e["benchmarks"])
    report = (tmp_path / "steps" / "report.md").read_text()
    assert "torch:cpu b1 " in report and "onnxruntime:cpu b1 " in report
