"""A run that can be trusted: checked cache entries, a locked run folder, cached measurements, pinned training."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from compressor import run_pipeline
from compressor.artifact import content_sha256
from compressor.errors import RunFolderInUse
from compressor.run.lock import run_folder_lock
from compressor.run.pipeline import parse_pipeline
from tests.conftest import pipeline_dict, write_pipeline

ROOT = Path(__file__).resolve().parents[2]
HOLD_LOCK = ("import sys; from compressor.run.lock import run_folder_lock\n"
             "with run_folder_lock(sys.argv[1]):\n    print('locked', flush=True); sys.stdin.read()\n")


def _entry_of(cache: Path, sha256: str) -> Path:
    for entry in (cache / "objects").glob("*/entry.json"):
        data = json.loads(entry.read_text())
        if data["artifact"]["sha256"] == sha256:
            return entry.parent / data["artifact"]["path"]
    raise AssertionError(f"no cache entry holds {sha256}")


def test_a_run_into_a_folder_another_run_holds_is_refused(tmp_path: Path, tiny_weights: Path) -> None:
    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(out)], cwd=ROOT, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        pipeline = parse_pipeline(pipeline_dict(tiny_weights, {"fp32": ["convert.onnx"]}), tmp_path)
        with pytest.raises(RunFolderInUse, match=rf"run folder '.*out' is in use by another compressor run "
                                                 rf"\(pid {holder.pid}\); wait for it or choose another --out"):
            run_pipeline(pipeline, out, benchmark=False)
        path = write_pipeline(tmp_path, pipeline_dict(tiny_weights, {"fp32": ["convert.onnx"]}))
        proc = subprocess.run([sys.executable, "-m", "compressor.cli", "run", str(path), "--out", str(out),
                               "--no-bench"], capture_output=True, text=True, cwd=ROOT)
        assert proc.returncode == 2 and f"(pid {holder.pid})" in proc.stderr and "Traceback" not in proc.stderr
        assert not (out / "results.json").exists()  # refused before any work
    finally:
        holder.communicate("")
    results = run_pipeline(pipeline, out, benchmark=False)  # the holder is gone: the folder is free
    assert results["variants"][0]["status"] == "ok"


def test_the_lock_is_released_on_error_and_reentrant(tmp_path: Path) -> None:
    import fcntl

    out = tmp_path / "out"
    with pytest.raises(RuntimeError), run_folder_lock(out):
        with run_folder_lock(out):  # the API's run inside the CLI's: the same process re-enters
            pass
        raise RuntimeError("a failed run")
    fd = os.open(out / ".lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises BlockingIOError if it were still held
    finally:
        os.close(fd)


def test_taking_the_lock_removes_temp_files_killed_runs_left(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    out = tmp_path / "out"
    (out / "artifacts").mkdir(parents=True)
    stale = [out / f".results.json.{proc.pid}-ab12.tmp", out / "artifacts" / f".int8.onnx.{proc.pid}-cd34.tmp"]
    for path in stale:
        path.write_text("half")
    live = out / f".report.md.{os.getpid()}-ef56.tmp"
    live.write_text("being written")
    with run_folder_lock(out):
        assert not any(p.exists() for p in stale) and live.exists()


def test_a_corrupted_cache_entry_and_an_edited_metric_are_recomputed(tmp_path: Path, tiny_weights: Path) -> None:
    cache = tmp_path / "cache"
    raw = pipeline_dict(tiny_weights, {"fp32": ["convert.onnx"]})
    first = run_pipeline(parse_pipeline(raw, tmp_path), tmp_path / "a", cache_dir=cache, benchmark=False)
    sha = first["variants"][0]["artifact"]["sha256"]
    model = _entry_of(cache, sha)
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    for path in (cache / "memo").glob("metric-*.json"):  # every recorded metric edited
        record = json.loads(path.read_text())
        record["value"] = 0.123
        path.write_text(json.dumps(record))
    again = run_pipeline(parse_pipeline(raw, tmp_path), tmp_path / "b", cache_dir=cache, benchmark=False)
    v = again["variants"][0]
    assert v["artifact"]["sha256"] == sha and not v["ledger"][0]["cache_hit"]
    assert content_sha256(tmp_path / "b" / v["artifact"]["path"]) == sha
    assert v["metric"] == first["variants"][0]["metric"]
    assert again["reference"]["metric"] == first["reference"]["metric"]
    assert any("failed its content check" in w and "metric-" in w for w in again["warnings"])
    assert any(w.startswith("cache entry ") and "sha256 of 'out/model.onnx'" in w for w in again["warnings"])
    assert first["warnings"] == []
    assert "failed its content check" in (tmp_path / "b" / "report.md").read_text()


def test_measurements_are_reused_until_remeasure(tmp_path: Path, tiny_weights: Path) -> None:
    raw = pipeline_dict(tiny_weights, {"fp32": ["convert.onnx"]})
    raw["benchmark"]["batch_sizes"] = [1]
    cache = tmp_path / "cache"
    first = run_pipeline(parse_pipeline(raw, tmp_path), tmp_path / "a", cache_dir=cache)
    second = run_pipeline(parse_pipeline(raw, tmp_path), tmp_path / "b", cache_dir=cache)  # a new folder
    (b1,), (b2,) = first["variants"][0]["benchmarks"], second["variants"][0]["benchmarks"]
    assert b1["cached"] is False and b2["cached"] is True and b2["p50_ms"] == b1["p50_ms"]
    assert "1 of these rows come from the cache" in (tmp_path / "b" / "report.md").read_text()
    proc = subprocess.run([sys.executable, "-m", "compressor.cli", "run", str(write_pipeline(tmp_path, raw)),
                           "--out", str(tmp_path / "c"), "--cache", str(cache), "--remeasure"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    (b3,) = json.loads((tmp_path / "c" / "results.json").read_text())["variants"][0]["benchmarks"]
    assert b3["cached"] is False and b3["batch_size"] == 1


def test_a_measurement_key_covers_the_machine_and_the_settings() -> None:
    from types import SimpleNamespace

    from compressor.measure.environment import machine_fingerprint
    from compressor.measure.timing import TimingSettings
    from compressor.run.measurements import measurement_key

    def context(max_cv: float = 0.1) -> SimpleNamespace:
        return SimpleNamespace(spec=SimpleNamespace(benchmark=SimpleNamespace(threads=1, max_cv=max_cv, max_remeasure=1)),
                               data=SimpleNamespace(fingerprint=lambda role: "data"))

    ctx = context()
    art = SimpleNamespace(sha256="a" * 64)
    machine = machine_fingerprint()
    assert {"cpu", "cores", "packages"} <= set(machine) and "load_average" not in machine
    base = measurement_key(ctx, art, "onnxruntime:cpu", 1, TimingSettings(), machine)
    assert base == measurement_key(ctx, art, "onnxruntime:cpu", 1, TimingSettings(), machine_fingerprint())
    other_cpu = {**machine, "cpu": {**machine["cpu"], "isa": ["avx512_vnni"]}}
    for key in (measurement_key(ctx, art, "onnxruntime:cpu", 1, TimingSettings(), other_cpu),
                measurement_key(ctx, art, "onnxruntime:cpu", 4, TimingSettings(), machine),
                measurement_key(ctx, art, "torch:cpu", 1, TimingSettings(), machine),
                measurement_key(ctx, art, "onnxruntime:cpu", 1, TimingSettings(min_runs=7), machine),
                measurement_key(context(max_cv=0.3), art, "onnxruntime:cpu", 1, TimingSettings(), machine)):
        assert key != base


def test_training_runs_on_pinned_threads_whatever_ran_before(tiny_weights: Path) -> None:
    import torch

    from compressor.artifact import BATCH, Signature, TensorSpec
    from compressor.data import load_bundle
    from compressor.passes._torch_fit import fit, training_threads
    from compressor.run.pipeline import DataSpec
    from tests.tiny_models import TinyCNN

    split = load_bundle(DataSpec(source="digits")).split("training")
    signature = Signature((TensorSpec("input", (BATCH, 1, 8, 8)),))
    before = torch.get_num_threads()
    states, seen = [], []
    try:
        for earlier in (1, 3):  # what an earlier torch session in the process left behind
            torch.set_num_threads(earlier)
            torch.manual_seed(0)
            model = TinyCNN()
            fit(model, split, signature, epochs=1, after_step=lambda *_: seen.append(torch.get_num_threads()))
            assert torch.get_num_threads() == earlier  # restored after training
            states.append(model.state_dict())
    finally:
        torch.set_num_threads(before)
    assert set(seen) == {training_threads()}
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_training_threads_enter_the_key_of_training_passes(tmp_path: Path, tiny_weights: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from compressor.passes import _torch_fit
    from compressor.passes.registry import build_pass
    from compressor.run.step import pass_key
    from tests.pass_context import make_context

    ctx = make_context(tmp_path, tiny_weights)
    prune = build_pass("prune.magnitude", {"sparsity": 0.5, "finetune_epochs": 1})
    convert = build_pass("convert.onnx")
    keys = {p.name: pass_key(ctx, ctx.reference, p) for p in (prune, convert)}
    monkeypatch.setattr(_torch_fit, "training_threads", lambda: 7)
    assert pass_key(ctx, ctx.reference, prune) != keys["prune.magnitude"]
    assert pass_key(ctx, ctx.reference, convert) == keys["convert.onnx"]


def test_a_setting_at_its_neutral_value_leaves_the_cache_key_as_before(tmp_path: Path, tiny_weights: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """``key_neutral``: a setting added later, at the value that makes what the pass made before it existed,
    stays out of the key (earlier results stay valid); any other value enters it."""
    from compressor.passes.prune.structured import PruneStructured
    from compressor.passes.registry import build_pass
    from compressor.run.step import pass_key
    from tests.pass_context import make_context

    ctx = make_context(tmp_path, tiny_weights)
    plain = pass_key(ctx, ctx.reference, build_pass("prune.structured", {"sparsity": 0.5}))
    assert pass_key(ctx, ctx.reference, build_pass("prune.structured", {"sparsity": 0.5, "reconstruct": False})) == plain
    refit = pass_key(ctx, ctx.reference, build_pass("prune.structured", {"sparsity": 0.5, "reconstruct": True}))
    assert refit != plain
    monkeypatch.setattr(PruneStructured, "key_neutral", {"workers": 1})  # as if reconstruct entered the key
    assert pass_key(ctx, ctx.reference, build_pass("prune.structured", {"sparsity": 0.5})) != plain
