"""compressor search on the tiny CNN: the study, the front after every trial, resume after a kill, bad input."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from compressor import search_pipeline
from compressor.errors import ConfigError
from compressor.run.pipeline import parse_pipeline
from compressor.run.search_front import dominates, pareto_front, wilson_interval
from compressor.run.search_space import apply_values, sample, space_params
from compressor.run.spec import SearchSpec
from tests.conftest import pipeline_dict, write_pipeline

pytest.importorskip("optuna")

ROOT = Path(__file__).resolve().parents[2]
SEARCH = {
    "templates": {
        "int8": ["convert.onnx", {"quantize.onnx.static": {"per_channel": True}}],
        "int8-opt": ["convert.onnx", "quantize.onnx.static", {"optimize.onnx": {"level": "all"}}],
    },
    "space": {"quantize.onnx.static.calibration": ["minmax", "percentile"],
              "quantize.onnx.static.per_channel": [True, False]},
    "latency": {"target": "onnxruntime:cpu", "batch_size": 4},
    "startup_trials": 2,
}
VARIANTS = {"fp32": ["convert.onnx"], "int8": ["convert.onnx", "quantize.onnx.static"]}


def raw_search(weights: Path, **search: Any) -> dict[str, Any]:
    return pipeline_dict(weights, VARIANTS, search={**SEARCH, **search})


@pytest.fixture(scope="module")
def searched(tmp_path_factory, tiny_weights) -> tuple[Path, dict[str, Any], list[dict[str, Any]]]:
    tmp = tmp_path_factory.mktemp("search")
    fronts: list[dict[str, Any]] = []
    pipeline = parse_pipeline(raw_search(tiny_weights), tmp)
    from compressor.run import search_pipeline as run_search

    results = run_search(pipeline, tmp / "out", 3, on_front=lambda r: fronts.append(json.loads(json.dumps(r))))
    return tmp / "out", results, fronts


def test_a_search_finishes_its_trials_and_writes_the_front_after_each(searched) -> None:
    out, results, fronts = searched
    s = results["search"]
    assert s["trials_finished"] == 3 and s["stopped"] == "trials"
    assert [f["search"]["trials_finished"] for f in fronts] == [0, 1, 2, 3, 3]  # before, after each, at the end
    assert (out / "search.db").is_file() and s["storage"].startswith("sqlite:///")
    assert s["front"], "a within-budget trial is on the front"
    names = [v["name"] for v in results["variants"]]
    assert names[:2] == ["fp32", "int8"] and set(names[2:]) == set(s["front"])
    for v in results["variants"][2:]:
        assert (out / v["artifact"]["path"]).exists()
        [bench] = v["benchmarks"]
        assert bench["runtime"] == "onnxruntime" and bench["batch_size"] == 4
        assert bench["p50_low_ms"] <= bench["p50_ms"] <= bench["p50_high_ms"]
    for t in s["trials"]:
        assert t["state"] == "COMPLETE" and t["template"] in SEARCH["templates"]
        assert set(t["params"]) == set(SEARCH["space"])
        assert t["cache"]["steps_run"] + t["cache"]["steps_cached"] == len(SEARCH["templates"][t["template"]])
    # convert.onnx is every trial's first step: computed once (by the compared variants), then cache hits
    assert all(t["cache"]["steps_cached"] >= 1 for t in s["trials"])
    assert [d["variant"] for d in s["dominance"]] == ["fp32", "int8"]


def test_a_rerun_continues_the_study_without_redoing_trials(searched, tiny_weights) -> None:
    out, results, _ = searched
    pipeline = parse_pipeline(raw_search(tiny_weights), out.parent)
    again = search_pipeline(pipeline, out, 4)
    s = again["search"]
    assert s["trials_finished"] == 4 and len(s["trials"]) == 4
    assert s["trials"][:3] == results["search"]["trials"]  # the first three are read back, not re-run
    assert "## Search" in (out / "report.md").read_text()


def test_a_killed_search_resumes_to_the_requested_number(tmp_path, tiny_weights) -> None:
    """SIGKILL the CLI once its first trial has started, then rerun: trials finish once each, none twice."""
    raw = raw_search(tiny_weights, startup_trials=3)
    path = write_pipeline(tmp_path, raw)
    out = tmp_path / "out"
    # a cache of its own: trials do real work (the shared one may hold them all), so a kill lands inside one
    cmd = [sys.executable, "-m", "compressor.cli", "search", str(path), "--trials", "3", "--out", str(out),
           "--cache", str(tmp_path / "cache")]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600  # a loaded machine starts the CLI slowly
    while time.monotonic() < deadline and proc.poll() is None and _started_trials(out) < 2:
        time.sleep(0.05)  # trial 0 done, trial 1 drawn: a kill now cuts a trial short
    running = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert running, "the search ended before it could be killed"
    before = _trials(out)
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    s = json.loads((out / "results.json").read_text())["search"]
    assert s["trials_finished"] == 3
    counted = [t for t in s["trials"] if not t.get("interrupted")]
    assert len(counted) == 3 and all(t["state"] == "COMPLETE" for t in counted)
    interrupted = [t for t in s["trials"] if t.get("interrupted")]
    assert len(interrupted) == sum(t["state"] == "RUNNING" for t in before)
    redone = {t["retry_of"]: t for t in counted if "retry_of" in t}
    assert set(redone) == {t["number"] for t in interrupted}
    for t in interrupted:  # drawn again with the same settings (a kill before they were stored leaves none)
        assert "params" not in t or redone[t["number"]]["params"] == t["params"]
    finished_before = {t["number"]: t for t in before if t["state"] == "COMPLETE"}
    after = {t["number"]: t for t in s["trials"]}
    assert all(after[n]["p50_ms"] == t["p50_ms"] for n, t in finished_before.items())  # kept, not re-run


def _trials(out: Path) -> list[dict[str, Any]]:
    import optuna

    storage = f"sqlite:///{out / 'search.db'}"
    summaries = optuna.get_all_study_summaries(storage)
    if not summaries:
        return []
    [summary] = summaries
    study = optuna.load_study(study_name=summary.study_name, storage=storage)
    return [{**t.user_attrs, "number": t.number, "state": t.state.name} for t in study.get_trials()]


def _started_trials(out: Path) -> int:
    if not (out / "search.db").exists():
        return 0
    try:
        return len(_trials(out))
    except Exception:  # noqa: BLE001 - the database is being created by the other process
        return 0


class Draws:
    """A stand-in for an Optuna trial: the first choice, the low end."""

    def suggest_categorical(self, name: str, choices: list[Any]) -> Any:
        return choices[-1]

    def suggest_float(self, name: str, low: float, high: float, **_: Any) -> float:
        return low

    def suggest_int(self, name: str, low: int, high: int, **_: Any) -> int:
        return high


def test_the_space_reads_ranges_choices_and_templates() -> None:
    search = SearchSpec(templates={"a": ["convert.onnx", {"prune.magnitude": {"sparsity": 0.5}}], "b": ["convert.onnx"]},
                        space={"prune.magnitude.sparsity": [0.5, 0.95], "prune.magnitude.finetune_epochs": [1, 3],
                               "prune.magnitude.scope": {"choices": ["global", "layer"]},
                               "prune.magnitude.ramp_fraction": {"low": 0.1, "high": 0.9, "step": 0.1}})
    params = {p.key: p for p in space_params(search)}
    assert params["prune.magnitude.sparsity"].low == 0.5 and not params["prune.magnitude.sparsity"].integer
    assert params["prune.magnitude.finetune_epochs"].choices == (1, 3)  # two ints: choices, not a range
    template, steps, values = sample(Draws(), search, list(params.values()))
    assert template == "b" and steps == ["convert.onnx"] and values == {}  # b has no prune step: nothing drawn
    search.templates = {"a": search.templates["a"]}
    template, steps, values = sample(Draws(), search, list(params.values()))
    assert steps[1] == {"prune.magnitude": {"sparsity": 0.5, "finetune_epochs": 3, "scope": "layer",
                                            "ramp_fraction": 0.1}}
    assert apply_values(["convert.onnx"], {"prune.magnitude.sparsity": 0.9}) == ["convert.onnx"]


@pytest.mark.parametrize("space, expected", [
    ({"quantize.onnx.dynamic.per_channel": [True]}, "no search template uses"),
    ({"quantize.onnx.static.calibrashun": ["minmax"]}, "calibrashun"),
    ({"quantize.onnx.static.calibration": ["minmax", "bogus"]}, "bogus"),
    ({"quantize.onnx.static.exclude_nodes": [["a"], ["b"]]}, "choices are numbers, strings"),
])
def test_a_space_that_cannot_run_is_refused_on_load(tmp_path, tiny_weights, space, expected) -> None:
    with pytest.raises(ConfigError, match=expected):
        parse_pipeline(raw_search(tiny_weights, space=space), tmp_path)


def test_search_without_a_section_or_trials_exits_2(tmp_path, tiny_weights) -> None:
    path = write_pipeline(tmp_path, pipeline_dict(tiny_weights, VARIANTS))
    done = subprocess.run([sys.executable, "-m", "compressor.cli", "search", str(path), "--trials", "2", "--out",
                           str(tmp_path / "out")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "has no 'search:' section" in done.stderr and "Traceback" not in done.stderr


def test_the_front_and_dominance_use_intervals() -> None:
    def t(name: str, metric: float, p50: float, size: int, ok: bool = True, half: float = 0.01) -> dict[str, Any]:
        return {"name": name, "metric": metric, "p50_ms": p50, "p50_low_ms": p50 - half, "p50_high_ms": p50 + half,
                "size_bytes": size, "within_budget": ok, "metric_interval": list(wilson_interval(metric, 450))}

    trials = [t("fast", 0.97, 1.0, 100), t("slow", 0.97, 2.0, 100), t("accurate", 0.99, 3.0, 50),
              t("over", 0.5, 0.1, 10, ok=False)]
    assert [f["name"] for f in pareto_front(trials, ["metric", "p50", "size"], True)] == ["fast", "accurate"]
    assert dominates(trials[0], trials[1], True).startswith("faster")
    assert dominates(t("close", 0.97, 1.95, 100, half=0.1), trials[1], True) is None  # intervals overlap
    assert dominates(trials[1], trials[0], True) is None
    low, high = wilson_interval(0.97, 450)
    assert low < 0.97 < high and high - low < 0.04


def test_a_storage_optuna_cannot_open_is_one_line(tmp_path, tiny_weights) -> None:
    pipeline = parse_pipeline(raw_search(tiny_weights), tmp_path)
    with pytest.raises(ConfigError, match="--storage 'nosuchdb://user:\\*\\*\\*@host/db' cannot hold the study"):
        search_pipeline(pipeline, tmp_path / "out", 1, storage="nosuchdb://user:secret@host/db")
