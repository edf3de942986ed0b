"""The runner end to end on a tiny model: results.json contract, cache, resume, exit codes, CLI."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from compressor import run_pipeline
from compressor.run.pipeline import parse_pipeline
from compressor.run.results import exit_code
from tests.conftest import pipeline_dict, write_pipeline

VARIANTS = {
    "fp32": ["convert.onnx"],
    "int8": ["convert.onnx", {"quantize.onnx.static": {"per_channel": True}}],
    "qop": ["convert.onnx", {"quantize.onnx.static": {"format": "qoperator", "activation_type": "int8"}}],
}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_weights) -> Path:
    tmp = tmp_path_factory.mktemp("run")
    raw = pipeline_dict(tiny_weights, VARIANTS, targets=["onnxruntime:cpu", "torch:cpu", "onnxruntime:cuda"])
    run_pipeline(parse_pipeline(raw, tmp), tmp / "out")
    return tmp / "out"


def test_results_follow_the_contract(run_dir: Path) -> None:
    results = json.loads((run_dir / "results.json").read_text())
    assert results["schema"] == 1 and results["pipeline"] == "tiny"
    assert {"format", "size_bytes", "metric"} <= set(results["reference"])
    assert {"cpu", "load_average", "packages"} <= set(results["environment"])
    assert "isa" in results["environment"]["cpu"]
    names = [v["name"] for v in results["variants"]]
    assert names == list(VARIANTS)
    for v in results["variants"]:
        assert {"name", "passes", "artifact", "metric", "metric_drop", "within_budget", "ledger", "benchmarks"} <= set(v)
        assert {"format", "path", "size_bytes", "gzip_bytes", "sha256"} <= set(v["artifact"])
        assert (run_dir / v["artifact"]["path"]).is_file()
        assert len(v["ledger"]) == len(v["passes"])
        for e in v["ledger"]:
            assert {"pass", "config", "format_in", "format_out", "metric", "parity", "seconds", "cache_hit"} <= set(e)
        batches = sorted(b["batch_size"] for b in v["benchmarks"])
        assert batches == [1, 4]
        for b in v["benchmarks"]:
            assert b["runtime"] == "onnxruntime" and b["device"] == "cpu"
            assert {"p50_ms", "p90_ms", "p99_ms", "mean_ms", "cv", "throughput_per_s", "cold_start_ms",
                    "peak_rss_mb", "metric", "threads"} <= set(b)
            assert 0 < b["p50_ms"] <= b["p90_ms"] <= b["p99_ms"] and b["peak_rss_mb"] > 10
    ref_targets = {b["runtime"] for b in results["reference"]["benchmarks"]}
    assert ref_targets == {"torch"}  # the torch reference runs on torch:cpu only
    assert results["skipped_targets"] == [{"target": "onnxruntime:cuda",
                                          "reason": "no cuda device for onnxruntime on this machine"}]


def test_conversion_parity_and_metric_in_ledger(run_dir: Path) -> None:
    results = json.loads((run_dir / "results.json").read_text())
    fp32 = results["variants"][0]
    assert fp32["ledger"][0]["parity"]["max_abs_error"] < 1e-4
    assert fp32["metric_drop"] == pytest.approx(0.0, abs=1e-9)
    int8 = results["variants"][1]
    assert int8["ledger"][1]["parity"] is None and int8["ledger"][1]["metric"] == int8["metric"]


def test_speed_checks_cover_each_quantization(run_dir: Path) -> None:
    results = json.loads((run_dir / "results.json").read_text())
    for v in results["variants"][1:]:
        checks = v["speed_checks"]
        assert {c["batch_size"] for c in checks} == {1, 4}
        for c in checks:  # measured as paired rounds: the speed-up is the median of the rounds' ratios
            assert 3 <= len(c["rounds"]) <= 4 and c["speedup"] == pytest.approx(sorted(c["rounds"])[len(c["rounds"]) // 2]
                                                                             if len(c["rounds"]) % 2 else
                                                                             sum(sorted(c["rounds"])[1:3]) / 2, abs=1e-3)
            assert c["interval"][0] <= c["speedup"] <= c["interval"][1] and c["min_effect"] == 0.05
            assert c["verdict"] in ("faster", "slower", "no change", "inconclusive")
            slower = c["verdict"] == "slower"
            flagged = any(f"batch {c['batch_size']} " in w for w in v["warnings"])
            assert slower == flagged  # slower pairs are always flagged; faster, unchanged or inconclusive ones never


def test_reports_written(run_dir: Path) -> None:
    md = (run_dir / "report.md").read_text()
    assert "## Ledger" in md and "int8" in md and "## Environment" in md
    assert (run_dir / "pareto.png").stat().st_size > 1000
    html = (run_dir / "report.html").read_text()
    assert '<table class="sortable" id="variants">' in html and 'id="v-0"' in html and "**" not in html


def test_second_run_hits_the_cache_everywhere(run_dir: Path, tiny_weights: Path, tmp_path: Path) -> None:
    raw = pipeline_dict(tiny_weights, VARIANTS)
    results = run_pipeline(parse_pipeline(raw, tmp_path), run_dir, benchmark=False)
    assert all(e["cache_hit"] for v in results["variants"] for e in v["ledger"])


def test_interrupted_run_resumes(tmp_path: Path, tiny_weights: Path) -> None:
    pipeline = parse_pipeline(pipeline_dict(tiny_weights, VARIANTS), tmp_path)
    pipeline.select(["int8"])  # as if the run stopped after the first variant
    cache = tmp_path / "cache"  # a cold cache of its own: the session's shared one has these entries
    first = run_pipeline(pipeline, tmp_path / "out", cache_dir=cache, benchmark=False)
    assert not any(e["cache_hit"] for e in first["variants"][0]["ledger"])
    full = run_pipeline(parse_pipeline(pipeline_dict(tiny_weights, VARIANTS), tmp_path), tmp_path / "out",
                        cache_dir=cache, benchmark=False)
    hits = {v["name"]: [e["cache_hit"] for e in v["ledger"]] for v in full["variants"]}
    assert hits == {"fp32": [True], "int8": [True, True], "qop": [True, False]}


def test_exit_codes() -> None:
    ok = {"variants": [{"status": "ok", "within_budget": False}]}
    assert exit_code(ok, strict=False) == 0 and exit_code(ok, strict=True) == 3
    assert exit_code({"variants": [{"status": "failed", "within_budget": False}]}, strict=False) == 1


def test_cli_run_and_report(tmp_path: Path, tiny_weights: Path) -> None:
    path = write_pipeline(tmp_path, pipeline_dict(tiny_weights, {"fp32": ["convert.onnx"]}))
    out = tmp_path / "cli-out"
    proc = subprocess.run([sys.executable, "-m", "compressor.cli", "run", str(path), "--out", str(out), "--no-bench"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert f"report: {out / 'report.md'}" in proc.stdout.replace("\n", "")
    (out / "report.md").unlink()
    proc = subprocess.run([sys.executable, "-m", "compressor.cli", "report", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0 and (out / "report.md").is_file()
    proc = subprocess.run([sys.executable, "-m", "compressor.cli", "inspect", str(out / "artifacts" / "fp32.onnx"), "--json"],
                          capture_output=True, text=True)
    info = json.loads(proc.stdout)
    assert info["format"] == "onnx" and info["ops"]["Conv"] == 1 and info["int8_share"] == 0.0


def test_cli_bench(run_dir: Path) -> None:
    model = run_dir / "artifacts" / "int8.onnx"
    proc = subprocess.run([sys.executable, "-m", "compressor.cli", "bench", str(model), "--batch", "1,2",
                           "--min-runs", "5", "--min-seconds", "0", "--json"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert [r["batch_size"] for r in rows] == [1, 2] and all(r["p50_ms"] > 0 for r in rows)
    proc = subprocess.run([sys.executable, "-m", "compressor.cli", "bench", str(model), "--batch", "x"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "--batch 'x'" in proc.stderr and "Traceback" not in proc.stderr


def test_a_slow_step_that_a_later_step_recovers_is_recorded_not_flagged() -> None:
    from types import SimpleNamespace

    from compressor.passes.registry import build_pass
    from compressor.run.speed import speed_checks

    def art(sha: str) -> SimpleNamespace:
        return SimpleNamespace(sha256=sha)

    def bench(p50: float) -> list[dict]:
        return [{"runtime": "onnxruntime", "device": "cpu", "batch_size": 32, "p50_ms": p50}]

    ledger = [{"pass": "quantize.onnx.static", "config": {}}, {"pass": "optimize.onnx", "config": {}}]
    chain = [art("fp32"), art("qdq"), art("baked")]
    passes = [build_pass("quantize.onnx.static"), build_pass("optimize.onnx")]
    outcome = SimpleNamespace(ledger=ledger, chain=chain, artifact=chain[-1], passes=passes)
    cpu = {"int8_dot_product": True}
    checks, warnings = speed_checks(outcome, {"fp32": bench(2.4), "qdq": bench(2.8), "baked": bench(1.0)}, cpu)
    assert warnings == [] and checks[0]["speedup"] < 0.95 and checks[0]["recovered_by_later_steps"] == 2.4
    _, warnings = speed_checks(outcome, {"fp32": bench(2.4), "qdq": bench(2.8), "baked": bench(2.7)}, cpu)
    assert len(warnings) == 1 and "step 1 (quantize.onnx.static)" in warnings[0]


def test_a_step_that_removed_many_macs_but_gained_little_is_flagged() -> None:
    from types import SimpleNamespace

    from compressor.passes.registry import build_pass
    from compressor.run.speed import speed_checks

    def bench(p50: float) -> list[dict]:
        return [{"runtime": "onnxruntime", "device": "cpu", "batch_size": 32, "p50_ms": p50}]

    report = {"macs_before": 1000, "macs_after": 600}
    ledger = [{"pass": "prune.structured", "config": {}, "report": report}]
    chain = [SimpleNamespace(sha256="dense"), SimpleNamespace(sha256="pruned")]
    outcome = SimpleNamespace(ledger=ledger, chain=chain, artifact=chain[-1], passes=[build_pass("prune.structured")])
    for _ in range(2):  # results built twice record the step's latency once
        checks, warnings = speed_checks(outcome, {"dense": bench(2.0), "pruned": bench(1.9)}, {})
    assert len(warnings) == 1 and "removed 40% of the MACs but runs at 1.05x" in warnings[0]
    assert ledger[0]["speed"] == [{"target": "onnxruntime:cpu", "batch_size": 32, "parent_p50_ms": 2.0,
                                   "p50_ms": 1.9, "speedup": 1.053}]
    _, warnings = speed_checks(outcome, {"dense": bench(2.0), "pruned": bench(1.5)}, {})
    assert warnings == []
    report["macs_after"] = 900  # 10% of the MACs removed: 1.05x is no surprise
    _, warnings = speed_checks(outcome, {"dense": bench(2.0), "pruned": bench(1.9)}, {})
    assert warnings == []
