"""The digits sample's search, killed once at a random moment and resumed: what it finds, what it redid.

    python -m benchmarks.search_resume [--trials 30] [--kill-after-s RANDOM] [--seed 0] [--out DIR] [--cache DIR]
    python -m benchmarks.search_resume --side-by-side DIR      # only the side-by-side check of a search folder

Starts ``compressor search samples/digits_cnn/pipeline.yaml --trials N`` in a fresh run folder and
cache, sends it SIGKILL after a seeded random number of seconds (unless it finished first), runs the
same command again to completion, and prints: the trials finished, failed and cut short, the cache's
share of the work (pass steps run vs. taken from the cache, measurements taken vs. reused), the front
and which trial beat each hand-written variant, with the intervals. Exit 1 when the resumed search
did not finish exactly N trials or a trial finished before the kill was run again.

The search's own figures come from measurements taken one at a time while it ran: on a shared
machine the load drifts between them. So the front and the hand-written variants are then timed
again side by side: each model in its own onnxruntime session (1 thread, batch 32), interleaved,
7 rounds; the figure is the median of the rounds' p50s and the interval their range. A trial beats
a variant when it is faster with the ranges apart at an equal or better metric, or better with the
metric's Wilson intervals apart at an equal or lower p50.
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


def side_by_side(out: Path, rounds: int = 7, batch: int = 32) -> list[str]:
    """Time the front and the compared variants of a search folder in one process, interleaved; report lines."""
    import numpy as np
    import onnxruntime as ort

    from compressor.measure.compare import interleaved_rounds
    from compressor.run.search_front import dominates

    results = json.loads((out / "results.json").read_text())
    s = results["search"]
    by_name = {t["name"]: t for t in s["trials"]}
    models = {c["name"]: dict(c) for c in s["compared"]}
    models.update({n: dict(by_name[n]) for n in s["front"]})
    paths = {v["name"]: out / v["artifact"]["path"] for v in results["variants"] if v.get("artifact")}
    runs = {}
    for name in models:
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(paths[name]), options, providers=["CPUExecutionProvider"])
        x = np.random.default_rng(0).random((batch, 1, 28, 28), dtype=np.float32)
        feeds = {session.get_inputs()[0].name: x}
        runs[name] = lambda session=session, feeds=feeds: session.run(None, feeds)
    per_round = interleaved_rounds(runs, rounds)
    for name, values in per_round.items():
        models[name].update(p50_ms=float(np.median(values)), p50_low_ms=min(values), p50_high_ms=max(values))
    lines = [f"side by side: onnxruntime:cpu, 1 thread, batch {batch}, {rounds} interleaved rounds (median [min, max] of round p50s)"]
    for name, m in sorted(models.items(), key=lambda kv: kv[1]["p50_ms"]):
        lines.append(f"  {name:<18} metric {m['metric']:.4f} [{m['metric_interval'][0]:.4f}, {m['metric_interval'][1]:.4f}]  "
                     f"p50 {m['p50_ms']:.4g} ms [{m['p50_low_ms']:.4g}, {m['p50_high_ms']:.4g}]")
    front = [models[n] for n in s["front"]]
    beats_all = [t["name"] for t in front if all(dominates(t, models[c["name"]], True) for c in s["compared"])]
    for c in s["compared"]:
        who = [t["name"] for t in front if dominates(t, models[c["name"]], True)]
        lines.append(f"  {c['name']}: beaten side by side by {', '.join(who) or 'no front trial'}")
    lines.append(f"front trials that beat every hand-written variant side by side: {', '.join(beats_all) or 'none'}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--kill-after-s", type=float, default=None, help="default: random in [60, 600)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--side-by-side", type=Path, default=None, help="only time a search folder's front side by side")
    args = parser.parse_args()
    if args.side_by_side is not None:
        print("\n".join(side_by_side(args.side_by_side.resolve())))
        return 0
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
    print("\n".join(side_by_side(out)))
    print(f"run folder: {out}  ->  {'ok' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
