"""Model zoo: our int8 against onnxruntime's and NNCF's defaults on six real models.

For each model (see models.py): the fp32 ONNX export, onnxruntime's ``quantize_static`` with its
defaults, NNCF's ``nncf.quantize`` (ONNX backend, defaults), ours with every node in int8
(``nodes: all``, the default before per-node precision), our default (``quantize.onnx.static`` with
no settings: ``nodes: auto``) and our best recipe, all from the same fp32 file and the same calibration
samples. Reported: quality (accuracy, top-1 agreement with fp32, or cosine to fp32), file size, and
p50 latency at batch 1 and 32 on ONNX Runtime's CPU provider, 1 thread, the five models timed in
interleaved rounds (each round times each once, in turn); latencies are medians over rounds and
speed-ups are medians of the per-round ratios with their range over the rounds.

    python -m benchmarks.zoo [--models digits-cnn,mtcnn-onet] [--rounds 7] [--quick] [--out runs/zoo]

Writes OUT/zoo.json (every figure, the per-round p50s, the environment) and prints the tables.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.zoo.models import ROOT, ZooModel, zoo

# the recipe users reach for (optimize.onnx before the quantizer, every node int8): built and scored, not timed
CHECK = "optimize-then-quantize"
KINDS = ("fp32", "ort-default", "nncf-default", "ours-all-int8", "ours-default", "ours-best")


def build(m: ZooModel, out: Path) -> tuple[dict[str, Path | str], Any]:
    """Run our variants through the toolchain, then the peers on its fp32 file: kind -> path (or the
    failure's reason), and the data bundle."""
    from benchmarks.zoo.peers import nncf_default, ort_default
    from compressor.data import load_bundle
    from compressor.frameworks._onnx import onnx_signature
    from compressor.run import run_pipeline
    from compressor.run.pipeline import parse_pipeline

    pipeline = parse_pipeline(m.pipeline({"fp32": [], "ours-all-int8": [{"quantize.onnx.static": {"nodes": "all"}}],
                                          "ours-default": ["quantize.onnx.static"], "ours-best": m.best,
                                          CHECK: ["optimize.onnx", {"quantize.onnx.static": {"nodes": "all"}}]}), ROOT, m.name)
    results = run_pipeline(pipeline, out / "run", benchmark=False)
    paths: dict[str, Path | str] = {}
    for v in results["variants"]:
        ok = v["status"] == "ok"
        paths[v["name"]] = out / "run" / v["artifact"]["path"] if ok else f"failed: {v.get('error', '?')}"
    data = load_bundle(pipeline.spec.data, pipeline.resolve)
    fp32 = paths["fp32"]
    sig = onnx_signature(fp32, layout=m.layout)
    calib = data.split("calibration")
    for kind, make in (("ort-default", ort_default), ("nncf-default", nncf_default)):
        dst = out / f"{kind}.onnx"
        stamp = dst.with_suffix(".from")
        source = results["variants"][0]["artifact"]["sha256"]
        try:
            if not (dst.exists() and stamp.exists() and stamp.read_text() == source):
                make(fp32, dst, calib, sig)
                stamp.write_text(source)
            paths[kind] = dst
        except Exception as exc:  # a peer that fails on a model is a result too
            paths[kind] = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    return {k: paths[k] for k in (*KINDS, CHECK)}, data


def outputs(session: Any, feeds: list[dict[str, np.ndarray]]) -> list[np.ndarray]:
    """Every output of ``session`` over the batches ``feeds``, concatenated per output."""
    runs = [session.run(None, f) for f in feeds]
    return [np.concatenate([r[i] for r in runs]) for i in range(len(runs[0]))]


def quality(kind: str, out: list[np.ndarray], ref: list[np.ndarray], labels: np.ndarray | None) -> float:
    """accuracy vs labels, top-1 agreement vs fp32, or the worst output's mean cosine to fp32."""
    if kind == "accuracy":
        return float(np.mean(out[0].argmax(1) == labels))
    if kind == "agreement":
        return float(np.mean(out[0].argmax(1) == ref[0].argmax(1)))
    cos = []
    for o, r in zip(out, ref):
        o, r = o.reshape(len(o), -1).astype(np.float64), r.reshape(len(r), -1).astype(np.float64)
        cos.append(np.mean(np.sum(o * r, 1) / (np.linalg.norm(o, axis=1) * np.linalg.norm(r, axis=1) + 1e-12)))
    return float(min(cos))


def time_batches(m: ZooModel, sessions: dict[str, Any], feed_of: Any, rounds: int) -> dict[int, dict[str, list[float]]]:
    """Per batch size, each model's p50 (ms) in every interleaved round."""
    from compressor.measure.compare import interleaved_rounds
    from compressor.measure.timing import TimingSettings

    rounds_by_batch = {}
    for batch in (1, 32):
        feeds = feed_of(batch)
        heavy = m.heavy and batch > 1
        settings = TimingSettings(warmup_runs=1 if heavy else 3, warmup_seconds=0.0, min_runs=3 if heavy else 20,
                                  min_seconds=0.3 if heavy else 0.2, max_seconds=5.0)
        runs = {k: (lambda s=s: s.run(None, feeds)) for k, s in sessions.items()}
        rounds_by_batch[batch] = interleaved_rounds(runs, rounds, settings)
    return rounds_by_batch


def ratio(per_round: dict[str, list[float]], base: str, kind: str) -> dict[str, float] | None:
    """Speed-up of ``kind`` over ``base``: median of the per-round ratios, and their range."""
    if base not in per_round or kind not in per_round:
        return None
    r = [b / k for b, k in zip(per_round[base], per_round[kind])]
    return {"median": statistics.median(r), "low": min(r), "high": max(r)}


def bench_model(m: ZooModel, out: Path, rounds: int) -> dict[str, Any]:
    """Everything the zoo reports for one model."""
    from benchmarks.suite import ort_session
    from compressor.data import feeds_for
    from compressor.frameworks._onnx import onnx_signature

    paths, data = build(m, out)
    sig = onnx_signature(paths["fp32"], layout=m.layout)
    test = data.split("evaluation")
    feeds = [feeds_for(sig, b, test.feeding) for b, _ in test.batches(32)]
    sessions = {k: ort_session(str(p)) for k, p in paths.items() if isinstance(p, Path)}
    check = sessions.pop(CHECK, None)
    ref = outputs(sessions["fp32"], feeds)
    rows: dict[str, Any] = {}
    for kind, p in paths.items():
        if not isinstance(p, Path):
            rows[kind] = {"error": p}
            continue
        session = check if kind == CHECK else sessions[kind]
        rows[kind] = {"quality": quality(m.quality, outputs(session, feeds), ref, test.labels),
                      "size_bytes": p.stat().st_size, "path": str(p)}
    checked = rows.pop(CHECK)

    def feed_of(batch: int) -> dict[str, np.ndarray]:
        idx = np.arange(batch) % len(test)
        return feeds_for(sig, {k: np.ascontiguousarray(v[idx]) for k, v in test.inputs.items()}, test.feeding)

    timed = time_batches(m, sessions, feed_of, rounds)
    for batch, per_round in timed.items():
        for kind in sessions:
            rows[kind][f"p50_ms_b{batch}"] = statistics.median(per_round[kind])
            rows[kind][f"p50_rounds_ms_b{batch}"] = per_round[kind]
            for base in ("fp32", "ort-default", "nncf-default"):
                rows[kind][f"speedup_b{batch}_vs_{base}"] = ratio(per_round, base, kind)
    return {"model": m.name, "shape": m.shape, "quality_kind": m.quality, "evaluation_samples": len(test),
            "calibration_samples": len(data.split("calibration")), "variants": rows, CHECK: checked}


def fmt_ratio(r: dict[str, float] | None) -> str:
    return "-" if r is None else f"{r['median']:.2f}x [{r['low']:.2f}-{r['high']:.2f}]"


def tables(results: list[dict[str, Any]]) -> str:
    """The per-model table and the Done-when summary, as markdown."""
    from benchmarks.suite import markdown_table

    rows = []
    for res in results:
        for kind, v in res["variants"].items():
            if "error" in v:
                rows.append([res["model"], kind, v["error"][:80], "", "", "", "", ""])
                continue
            rows.append([res["model"], kind, f"{v['quality']:.4f} {res['quality_kind']}", f"{v['size_bytes'] / 1024:.0f}",
                         f"{v['p50_ms_b1']:.3f}", f"{v['p50_ms_b32']:.2f}", fmt_ratio(v["speedup_b32_vs_fp32"]),
                         fmt_ratio(v["speedup_b32_vs_ort-default"])])
        c = res[CHECK]
        rows.append([res["model"], f"{CHECK} (not timed)", c.get("error", "")[:80] or f"{c['quality']:.4f} {res['quality_kind']}",
                     f"{c['size_bytes'] / 1024:.0f}" if "size_bytes" in c else "", "", "", "", ""])
    head = ["model", "variant", "quality", "KiB", "p50 b1 ms", "p50 b32 ms", "b32 vs fp32", "b32 vs ORT default"]
    summary = summary_rows(results)
    return (markdown_table(head, rows) + "\n\n" + markdown_table(
        ["ours", "vs", "models >= 1.1x at b32", "slower in every round", "quality >= peer's", "geomean b32",
         "geomean b1"], summary))


def summary_rows(results: list[dict[str, Any]]) -> list[list[Any]]:
    """For each of ours against each peer: how many models gain 1.1x at batch 32, how many are slower
    than the peer in every round, how many score at least the peer's quality, the geometric means."""
    rows = []
    for ours in ("ours-all-int8", "ours-default", "ours-best"):
        for peer in ("ort-default", "nncf-default"):
            got = {b: [res["variants"][ours].get(f"speedup_b{b}_vs_{peer}") for res in results] for b in (1, 32)}
            r32 = [r for r in got[32] if r]
            gm = {b: math.exp(statistics.mean(math.log(r["median"]) for r in got[b] if r)) if any(got[b]) else float("nan")
                  for b in (1, 32)}
            q = [(res["variants"][ours].get("quality"), res["variants"][peer].get("quality")) for res in results]
            rows.append([ours, peer, f"{sum(r['median'] >= 1.1 for r in r32)} of {len(results)}",
                         sum(r["high"] < 1.0 for r in r32), f"{sum(a is not None and b is not None and a >= b for a, b in q)}",
                         f"{gm[32]:.2f}x", f"{gm[1]:.2f}x"])
    return rows


def write_json(path: Path, rounds: int, results: list[dict[str, Any]], failed: list[dict[str, Any]]) -> None:
    """Every figure, the per-round p50s, the environment and the load average, written atomically."""
    import os

    from compressor.cache import atomic_write_text
    from compressor.measure.environment import cpu_info

    cpu = cpu_info()
    env = {"cpu": cpu["model"], "isa": cpu["isa"], "threads": 1, "rounds": rounds, "load_average": os.getloadavg()}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps({"environment": env, "models": results, "failed": failed}, indent=1))


def main() -> None:
    from compressor.measure.environment import cpu_info

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="", help="comma-separated zoo model names (default: all six)")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds")
    parser.add_argument("--quick", action="store_true", help="3 rounds: a rough look in a few minutes")
    parser.add_argument("--out", type=Path, default=Path("runs/zoo"))
    args = parser.parse_args()
    rounds = 3 if args.quick else args.rounds
    names = [n for n in args.models.split(",") if n]
    models = zoo(args.out, names)
    results, failed = [], []
    for m in models:
        print(f"== {m.name}: {m.shape}", flush=True)
        try:
            results.append(bench_model(m, args.out / m.name, rounds))
        except Exception as exc:  # one model's failure is reported, the others still run
            print(f"   failed: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}", flush=True)
            failed.append({"model": m.name, "error": f"{type(exc).__name__}: {exc}"[:1000]})
        write_json(args.out / "zoo.json", rounds, results, failed)  # after each model: a long run keeps what it did
    cpu = cpu_info()
    print(f"\nCPU: {cpu['model']}; ISA: {', '.join(cpu['isa'])}; ONNX Runtime CPU, 1 thread; {rounds} interleaved "
          f"rounds; p50 = median over rounds; speed-up = median of per-round ratios [min-max]\n")
    print(tables(results))
    print(f"\nwritten: {args.out / 'zoo.json'}")


if __name__ == "__main__":
    main()
