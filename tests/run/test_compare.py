"""compressor compare: the CI gate between two runs (metric, size, latency re-measured side by side)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from compressor import compare, run_pipeline
from compressor.artifact import content_sha256
from compressor.errors import ConfigError
from compressor.run.compare import Gate, compare_runs
from compressor.run.pipeline import parse_pipeline
from tests.conftest import FAST_BENCH, pipeline_dict

VARIANTS = {"fp32": ["convert.onnx"], "int8": ["convert.onnx", {"quantize.onnx.static": {"per_channel": True}}]}


@pytest.fixture(scope="module")
def base_run(tmp_path_factory, tiny_weights) -> Path:
    tmp = tmp_path_factory.mktemp("compare")
    raw = pipeline_dict(tiny_weights, VARIANTS, benchmark={**FAST_BENCH, "batch_sizes": [1]})
    run_pipeline(parse_pipeline(raw, tmp), tmp / "base")
    return tmp / "base"


def _copy(run: Path, dst: Path) -> Path:
    shutil.copytree(run, dst, ignore=shutil.ignore_patterns(".lock"))
    return dst


def _swap_int8_for_fp32(run: Path, metric_drop: float = 0.0) -> None:
    """The new run's "int8" variant is a different model file: the fp32 one (larger, and slower or not)."""
    results = json.loads((run / "results.json").read_text())
    v = {x["name"]: x for x in results["variants"]}
    shutil.copyfile(run / v["fp32"]["artifact"]["path"], run / v["int8"]["artifact"]["path"])
    path = run / v["int8"]["artifact"]["path"]
    v["int8"]["artifact"].update(sha256=content_sha256(path), size_bytes=path.stat().st_size)
    v["int8"]["metric"] -= metric_drop
    (run / "results.json").write_text(json.dumps(results))


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "compressor.cli", "compare", *args], capture_output=True, text=True)


def test_two_runs_of_the_same_pipeline_pass(base_run: Path, tmp_path: Path) -> None:
    new = _copy(base_run, tmp_path / "new")
    proc = _cli(str(base_run), str(new), "--format", "json", "--output", str(tmp_path / "c.json"))
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    assert found["passed"] and found["regressions"] == [] and json.loads((tmp_path / "c.json").read_text()) == found
    rows = [r for v in found["variants"] for r in v["latency"]]
    assert rows and all(r["same_artifact"] for r in rows)  # identical files: the same model, not re-measured
    proc = _cli(str(base_run), str(new))
    assert proc.returncode == 0 and "**passed**" in proc.stdout and "## Latency" in proc.stdout


def test_a_slower_larger_worse_variant_fails_and_is_named(base_run: Path, tmp_path: Path) -> None:
    new = _copy(base_run, tmp_path / "new")
    _swap_int8_for_fp32(new, metric_drop=0.05)
    seen = []

    def measure(artifact, target: str, batch: int) -> float:  # the new int8 file takes 3x as long
        seen.append((artifact.sha256, target, batch))
        return 3.0 if Path(artifact.path).is_relative_to(new) else 1.0

    found = compare_runs(base_run, new, Gate(max_drop=0.01), measure=measure)
    assert not found["passed"]
    named = [r for r in found["regressions"] if r.startswith("int8: ")]
    assert any("slower on onnxruntime:cpu batch 1: 0.33x" in r for r in named)
    assert any("drop 0.0500 > --max-drop 0.01" in r for r in named) and any("--max-growth" in r for r in named)
    int8 = next(v for v in found["variants"] if v["name"] == "int8")
    lat = int8["latency"][0]
    assert lat["verdict"] == "slower" and len(lat["rounds"]) == 5 and lat["interval"] == [pytest.approx(1 / 3, abs=1e-3)] * 2
    assert len(seen) == 10 and {s[1:] for s in seen} == {("onnxruntime:cpu", 1)}  # 5 rounds x 2 processes
    assert not any(r.startswith("fp32: ") for r in found["regressions"])
    loose = compare_runs(base_run, new, Gate(max_drop=0.1, max_slowdown=3.0, max_growth=10), measure=measure)
    assert loose["passed"]  # 3x slower is within --max-slowdown 3 (interval 0.33 > 1/4)


def test_the_real_harness_re_measures_a_changed_model(base_run: Path, tmp_path: Path) -> None:
    new = _copy(base_run, tmp_path / "new")
    _swap_int8_for_fp32(new)
    found = compare_runs(base_run, new, Gate(max_growth=100, rounds=3, max_rounds=3))
    lat = next(v for v in found["variants"] if v["name"] == "int8")["latency"][0]
    assert len(lat["rounds"]) == 3 and lat["verdict"] in ("faster", "slower", "no change", "inconclusive")
    assert found["passed"] == (lat["verdict"] != "slower")


def test_without_the_model_files_latency_is_not_compared_and_says_why(base_run: Path, tmp_path: Path) -> None:
    new = _copy(base_run, tmp_path / "new")
    _swap_int8_for_fp32(new)
    bare = tmp_path / "bare.json"
    shutil.copyfile(new / "results.json", bare)
    found = compare(base_run, bare, max_growth=100)
    int8 = next(v for v in found["variants"] if v["name"] == "int8")
    assert "bare results.json" in int8["latency"][0]["not_compared"] and found["passed"]
    (new / json.loads(bare.read_text())["variants"][1]["artifact"]["path"]).write_bytes(b"changed")
    found = compare(base_run, new, max_growth=100)
    why = next(v for v in found["variants"] if v["name"] == "int8")["latency"][0]["not_compared"]
    assert "differs from the sha256" in why


def test_a_missing_or_failed_variant_is_a_regression(base_run: Path, tmp_path: Path) -> None:
    new = _copy(base_run, tmp_path / "new")
    results = json.loads((new / "results.json").read_text())
    results["variants"] = [v for v in results["variants"] if v["name"] != "int8"]
    results["variants"].append({"name": "extra", "status": "ok"})
    (new / "results.json").write_text(json.dumps(results))
    found = compare(base_run, new)
    assert found["regressions"] == ["int8: missing in the new run"]
    assert {"name": "extra", "status": "new in this run", "regressions": []} in found["variants"]
    proc = _cli(str(base_run), str(new))
    assert proc.returncode == 1 and "int8: missing in the new run" in proc.stdout


@pytest.mark.parametrize("case, message", [
    ("missing", "does not exist"), ("empty_folder", "has no results.json"), ("not_json", "is not readable JSON"),
    ("wrong_schema", "is not a compressor results.json"), ("other_metric", "use different metrics"),
])
def test_bad_input_exits_2_with_one_line(base_run: Path, tmp_path: Path, case: str, message: str) -> None:
    target = tmp_path / "new"
    if case == "empty_folder":
        target.mkdir()
    elif case == "not_json":
        target.write_text("{not json")
    elif case == "wrong_schema":
        target.write_text(json.dumps({"schema": 7}))
    elif case == "other_metric":
        results = json.loads((base_run / "results.json").read_text())
        results["metric"]["name"] = "cosine"
        target.write_text(json.dumps(results))
    proc = _cli(str(base_run), str(target))
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_bad_thresholds_and_format_exit_2(base_run: Path) -> None:
    proc = _cli(str(base_run), str(base_run), "--max-drop", "-1")
    assert proc.returncode == 2 and "--max-drop = -1.0 is not allowed" in proc.stderr and "Traceback" not in proc.stderr
    proc = _cli(str(base_run), str(base_run), "--format", "xml")
    assert proc.returncode == 2 and "--format 'xml'" in proc.stderr
    with pytest.raises(ConfigError, match="--max-growth"):
        Gate(max_growth=-0.5)


def test_identical_files_are_re_measured_on_request(base_run: Path, tmp_path: Path) -> None:
    new = _copy(base_run, tmp_path / "new")
    found = compare_runs(base_run, new, Gate(remeasure_same=True, rounds=3, max_rounds=3),
                         measure=lambda artifact, target, batch: 1.0)
    rows = [r for v in found["variants"] for r in v["latency"]]
    assert found["passed"] and all(r["verdict"] == "no change" and len(r["rounds"]) == 3 for r in rows)
