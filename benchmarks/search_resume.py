"""The digits sample's search, killed once at a random moment and resumed: what it finds, what it redid.

    python -m benchmarks.search_resume [--trials 30] [--kill-after-s RANDOM] [--seed 0] [--out DIR] [--cache DIR]

Starts ``compressor search samples/digits_cnn/pipeline.yaml --trials N`` in a fresh run folder and
cache, sends it SIGKILL after a seeded random number of seconds (unless it finished first), runs the
same command again to completion, and prints: the trials finished, failed and cut short, the cache's
share of the work (pass steps run vs. taken from the cache, measurements taken vs. reused), the front
and which trial beat each hand-written variant, with the intervals. Exit 1 when the resumed search
did not finish exactly N trials or a trial finished before the kill was run again.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PIPELINE = ROOT / "samples" / "digits_cnn" / "pipeline.yaml"


def search(out: Path, cache: Path, trials: int, kill_after_s: float | None) -> tuple[int, float]:
    """Run the search once; SIGKILL it after ``kill_after_s``. (exit status, seconds)."""
    cmd = [sys.executable, "-m", "compressor.cli", "search", str(PIPELINE), "--trials", str(trials),
           "--out", str(out), "--cache", str(cache)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.monotonic()
    with open(out.parent / f"{out.name}.log", "a") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            proc.wait(timeout=kill_after_s)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    return proc.returncode, time.monotonic() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--kill-after-s", type=float, default=None, help="default: random in [60, 600)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--cache", type=Path, default=None)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="search-resume-"))
    out, cache = (args.out or base / "out").resolve(), (args.cache or base / "cache").resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    kill_after = args.kill_after_s if args.kill_after_s is not None else random.Random(args.seed).uniform(60, 600)
    code, first_s = search(out, cache, args.trials, kill_after)
    before = json.loads((out / "results.json").read_text())["search"] if (out / "results.json").exists() else None
    print(f"first run: exit {code} after {first_s:.0f} s (SIGKILL at {kill_after:.0f} s); "
          f"trials finished then: {before['trials_finished'] if before else 0}")
    code, second_s = search(out, cache, args.trials, None)
    s = json.loads((out / "results.json").read_text())["search"]
    c = s["cache"]
    print(f"resumed run: exit {code} after {second_s:.0f} s; {s['trials_finished']}/{s['trials_requested']} trials "
          f"finished, {s['trials_failed']} failed, {s['trials_interrupted']} cut short and drawn again")
    print(f"cache: {c['steps_run']} pass steps ran, {c['steps_cached']} from the cache; "
          f"{c['measurements_taken']} measurements taken, {c['measurements_cached']} reused")
    for t in s["trials"]:
        if t.get("interrupted") or "retry_of" in t:
            note = "cut short" if t.get("interrupted") else f"redo of trial {t['retry_of']}"
            print(f"  {t['name']}: {note}; steps run/cached {t.get('cache', {}).get('steps_run', '-')}/"
                  f"{t.get('cache', {}).get('steps_cached', '-')}")
    by_name = {t["name"]: t for t in s["trials"]}
    print("front (p50 on %s at batch %d):" % (s["latency"]["target"], s["latency"]["batch_size"]))
    for name in s["front"]:
        t = by_name[name]
        print(f"  {name} {t['template']} {json.dumps(t['params'])}: metric {t['metric']:.4f} "
              f"[{t['metric_interval'][0]:.4f}, {t['metric_interval'][1]:.4f}], p50 {t['p50_ms']:.4g} ms "
              f"[{t['p50_low_ms']:.4g}, {t['p50_high_ms']:.4g}], {t['size_bytes'] / 1024:.1f} KiB")
    for v, d in zip(s["compared"], s["dominance"]):
        who = "; ".join(f"{b['trial']} ({b['how']})" for b in d["dominated_by"][:2]) or "no trial"
        print(f"  {v['name']}: metric {v['metric']:.4f}, p50 {v['p50_ms']:.4g} ms "
              f"[{v['p50_low_ms']:.4g}, {v['p50_high_ms']:.4g}] -> beaten by {who}")
    finished_before = {t["name"]: t for t in (before or {}).get("trials", []) if t["state"] == "COMPLETE"}
    rerun = [n for n, t in finished_before.items() if by_name[n].get("p50_ms") != t.get("p50_ms")]
    ok = s["trials_finished"] == args.trials and not rerun and code == 0
    print(f"run folder: {out}  ->  {'ok' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
