"""Kill a run at random moments, resume it, and check that nothing differs from an uninterrupted run.

    python -m benchmarks.kill_resume [--kills 20] [--seed 0] [--no-bench] [--out DIR]

A three-variant pipeline on the digits sample (convert.onnx; + quantize.onnx.static; a short
prune.magnitude fine-tune + convert.onnx) runs once uninterrupted as the reference. Then, ``--kills``
times, it runs into a fresh folder and cache, is killed with SIGKILL at a seeded random moment and
is run again to completion. Each resumed run must give: exit 0, results.json equal to the
reference's apart from timings, the same artifact sha256s (and files that hash to them), no cache
entry that failed its content check, no staging folder left in the cache and no temp file left in
the run folder. Then two runs start together into one folder (one is refused with exit 2, the other
completes), and two start together into two folders sharing one cache (both complete, same results).
The script prints a table and exits 1 on any difference.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
WEIGHTS = ROOT / "samples" / "digits_cnn" / "weights.safetensors"
TIMING_KEYS = {"p50_ms", "p90_ms", "p99_ms", "mean_ms", "cv", "throughput_per_s", "cold_start_ms", "peak_rss_mb",
               "seconds", "cache_hit", "cached", "environment", "warnings", "speed_checks", "sibling_checks",
               "robust_cv", "load", "remeasured", "unstable"}
BUSY = "is in use by another compressor run"


def pipeline(weights: Path) -> dict[str, Any]:
    """The pipeline every run of this check uses: three variants, one of them trains."""
    return {
        "name": "kill-resume",
        "model": {"factory": "samples.digits_cnn.model:DigitsCNN", "weights": str(weights)},
        "data": {"source": "digits", "size": 28, "calibration": {"split": "train", "limit": 128}},
        "budget": {"max_drop": 0.05},
        "variants": {
            "fp32": ["convert.onnx"],
            # nodes: all: a timed per-node choice (nodes: auto) may differ between runs that share no cache,
            # and this check compares artifacts across separate caches
            "int8": ["convert.onnx", {"quantize.onnx.static": {"per_channel": True, "nodes": "all"}}],
            "pruned": [{"prune.magnitude": {"sparsity": 0.5, "finetune_epochs": 1}}, "convert.onnx"],
        },
        "targets": ["onnxruntime:cpu"],
        "benchmark": {"batch_sizes": [1], "warmup_runs": 2, "warmup_seconds": 0.0, "min_runs": 20,
                      "min_seconds": 0.0, "rounds": 3, "max_rounds": 3},
    }


def without_timings(data: Any) -> Any:
    """``data`` with every timing, cache and environment field dropped, recursively."""
    if isinstance(data, dict):
        return {k: without_timings(v) for k, v in data.items() if k not in TIMING_KEYS}
    if isinstance(data, list):
        return [without_timings(v) for v in data]
    return data


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class Check:
    """One trial: what was done and every problem found."""

    name: str
    detail: str = ""
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)


class Harness:
    """Starts CLI runs of the pipeline and compares what they leave with the reference run."""

    def __init__(self, work: Path, bench: bool) -> None:
        self.work = work
        self.bench = bench
        self.pipeline = work / "pipeline.yaml"
        self.pipeline.write_text(yaml.safe_dump(pipeline(WEIGHTS), sort_keys=False))
        self.reference: dict[str, Any] = {}

    def start(self, out: Path, cache: Path) -> subprocess.Popen:
        cmd = [sys.executable, "-m", "compressor.cli", "run", str(self.pipeline), "--out", str(out),
               "--cache", str(cache)] + ([] if self.bench else ["--no-bench"])
        return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)  # its own group: the kill takes its workers too

    def run(self, out: Path, cache: Path) -> tuple[int, str, float]:
        start = time.monotonic()
        proc = self.start(out, cache)
        _, err = proc.communicate()
        return proc.returncode, err, time.monotonic() - start

    def make_reference(self) -> float:
        rc, err, seconds = self.run(self.work / "reference" / "out", self.work / "reference" / "cache")
        if rc != 0:
            raise SystemExit(f"the reference run failed (exit {rc}): {err.strip()[-2000:]}")
        self.reference = json.loads((self.work / "reference" / "out" / "results.json").read_text())
        return seconds

    def compare(self, out: Path, cache: Path, check: Check) -> None:
        """Every way ``out`` (and ``cache``) may differ from the reference run, as problems on ``check``."""
        path = out / "results.json"
        if not path.is_file():
            check.problems.append("no results.json")
            return
        results = json.loads(path.read_text())
        if without_timings(results) != without_timings(self.reference):
            check.problems.append("results.json differs from the reference")
        if results.get("warnings"):
            check.problems.append(f"{len(results['warnings'])} cache entries failed their content check")
        for got, ref in zip(results["variants"], self.reference["variants"]):
            art = got.get("artifact") or {}
            if art.get("sha256") != (ref.get("artifact") or {}).get("sha256"):
                check.problems.append(f"variant {got['name']}: artifact sha256 differs")
            elif _sha256(out / art["path"]) != art["sha256"]:
                check.problems.append(f"variant {got['name']}: {art['path']} does not hash to its sha256")
        staged = list((cache / "tmp").iterdir()) if (cache / "tmp").is_dir() else []
        if staged:
            check.problems.append(f"{len(staged)} staging folder(s) left in the cache")
        temps = [p for p in out.rglob("*") if p.name.endswith(".tmp") or ".tmp." in p.name]
        if temps:
            check.problems.append(f"temp files left in the run folder: {[p.name for p in temps]}")


def kill_and_resume(h: Harness, index: int, delay: float) -> Check:
    """Run into a fresh folder and cache, SIGKILL it after ``delay`` seconds, resume it, compare."""
    out, cache = h.work / f"trial-{index:02d}" / "out", h.work / f"trial-{index:02d}" / "cache"
    check = Check(f"kill {index + 1}")
    proc = h.start(out, cache)
    try:
        proc.wait(timeout=delay)
        state = f"finished (exit {proc.returncode}) before the kill at {delay:.1f} s"
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        entries = len(list((cache / "objects").iterdir())) if (cache / "objects").is_dir() else 0
        staged = len(list((cache / "tmp").iterdir())) if (cache / "tmp").is_dir() else 0
        state = f"killed at {delay:.1f} s: {entries} entries, {staged} staging"
    proc.communicate()
    rc, err, check.seconds = h.run(out, cache)
    check.detail = f"{state}; resume exit {rc}"
    if rc != 0:
        check.problems.append(f"the resumed run exited {rc}: {err.strip()[-300:]}")
    h.compare(out, cache, check)
    return check


def _wait_all(procs: list[subprocess.Popen]) -> list[tuple[int, str]]:
    """(exit status, stderr) of each process, once all have ended."""
    errors = [p.communicate()[1] for p in procs]
    return [(p.returncode, err) for p, err in zip(procs, errors)]


def same_folder(h: Harness) -> Check:
    """Two runs started together into one folder: one refused with exit 2, the other completes."""
    out, cache = h.work / "same-folder" / "out", h.work / "same-folder" / "cache"
    check = Check("two runs, one folder")
    start = time.monotonic()
    procs = [h.start(out, cache) for _ in range(2)]
    finished = _wait_all(procs)
    check.seconds = time.monotonic() - start
    codes = sorted(rc for rc, _ in finished)
    check.detail = f"exits {codes}"
    if codes != [0, 2]:
        check.problems.append(f"expected exits [0, 2], got {codes}")
    refused = [err for rc, err in finished if rc == 2]
    if refused and BUSY not in refused[0]:
        check.problems.append(f"the refused run said: {refused[0].strip()[-300:]}")
    if refused and "Traceback" in refused[0]:
        check.problems.append("the refused run printed a traceback")
    h.compare(out, cache, check)
    return check


def shared_cache(h: Harness) -> Check:
    """Two runs started together into two folders that share one cache: both complete, same results."""
    cache = h.work / "shared-cache" / "cache"
    outs = [h.work / "shared-cache" / name for name in ("out-a", "out-b")]
    check = Check("two runs, one cache")
    start = time.monotonic()
    procs = [h.start(out, cache) for out in outs]
    finished = _wait_all(procs)
    check.seconds = time.monotonic() - start
    check.detail = f"exits {[rc for rc, _ in finished]}"
    for rc, err in finished:
        if rc != 0:
            check.problems.append(f"a run exited {rc}: {err.strip()[-300:]}")
    for out in outs:
        h.compare(out, cache, check)
    return check


def run_checks(work: Path, kills: int, seed: int, bench: bool, say: Any = print) -> list[Check]:
    """The reference run, ``kills`` kill-and-resume trials, and the two concurrency checks."""
    h = Harness(work, bench)
    ref_seconds = h.make_reference()
    say(f"reference run: {ref_seconds:.1f} s")
    rng = random.Random(seed)
    checks = []
    for i in range(kills):
        checks.append(kill_and_resume(h, i, rng.uniform(0.05, 1.0) * ref_seconds))
        say(_row(checks[-1]))
    for fn in (same_folder, shared_cache):
        checks.append(fn(h))
        say(_row(checks[-1]))
    return checks


def _row(c: Check) -> str:
    verdict = "ok" if not c.problems else "FAIL: " + "; ".join(c.problems)
    return f"{c.name:<22} {c.seconds:6.1f} s  {c.detail:<58} {verdict}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=20, help="kill-and-resume trials (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    parser.add_argument("--no-bench", action="store_true", help="skip latency measurements (much faster)")
    parser.add_argument("--out", type=Path, default=None, help="work folder (default: a new temp folder)")
    args = parser.parse_args(argv)
    work = args.out or Path(tempfile.mkdtemp(prefix="kill-resume-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"work folder: {work}")
    print(f"{'check':<22} {'resume':>8}  {'what happened':<58} verdict")
    checks = run_checks(work, args.kills, args.seed, not args.no_bench)
    failed = [c for c in checks if c.problems]
    print(f"\n{len(checks) - len(failed)}/{len(checks)} checks passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
