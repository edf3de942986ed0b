"""What the toolchain's own timing adds over a bare ``session.run`` loop.

Three timings of the same onnxruntime CPU model at batch 1, 1 thread, the toolchain's session options:

- bare: ``InferenceSession.run(None, feeds)`` in a plain ``time.perf_counter_ns`` loop, on the very
  InferenceSession (``compressor.frameworks._onnx.session_options``) the harness's Session wraps;
- harness: the one timing loop around an opened backends Session's ``run``
  (``compressor.measure.timing.time_session``, the very call the worker makes), in this process;
- worker: the p50 that ``compressor.measure.harness.measure`` reports from its fresh worker process.

Bare and harness are timed in this process, in interleaved rounds (the order flips each round); the worker
is started once per round between them. Every figure is the median over rounds of each round's p50. Two
models: an identity ONNX model (pure overhead) and the digits CNN's fp32 ONNX. The target: the harness within
5% and within 2 µs of the bare loop.

    python -m benchmarks.harness_overhead [--rounds 7] [--out DIR]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "digits_cnn"
WARMUP, RUNS = 20, 300  # per round, for both loops in this process
TARGET_PCT, TARGET_US = 5.0, 2.0


def identity_onnx(path: Path) -> Path:
    """An ONNX model whose one node is Identity: running it is nearly all overhead."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 16])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "identity", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def digits_fp32_onnx(out: Path) -> Path:
    """The digits CNN's fp32 ONNX, made by the sample pipeline's fp32-onnx variant (as peer_static_quant does)."""
    from compressor import run_pipeline
    from compressor.run.pipeline import load_pipeline
    from samples.digits_cnn.train import ensure_weights

    ensure_weights()
    pipeline = load_pipeline(SAMPLE / "pipeline.yaml")
    pipeline.select(["fp32-onnx"])
    results = run_pipeline(pipeline, out, benchmark=False)
    return out / results["variants"][0]["artifact"]["path"]


def onnx_artifact(path: Path) -> Any:
    from compressor.artifact import Artifact, content_sha256
    from compressor.formats import Format
    from compressor.frameworks._onnx import onnx_signature

    return Artifact(Format.ONNX, path, onnx_signature(path), content_sha256(path))


def bare_p50_ms(ort_session: Any, feeds: dict[str, np.ndarray], warmup: int = WARMUP, runs: int = RUNS) -> float:
    """p50 (ms) of ``ort_session.run(None, feeds)`` in a plain perf_counter_ns loop: no wrapper, no sync."""
    clock = time.perf_counter_ns
    for _ in range(warmup):
        ort_session.run(None, feeds)
    samples = []
    for _ in range(runs):
        t0 = clock()
        ort_session.run(None, feeds)
        samples.append(clock() - t0)
    return statistics.median(samples) / 1e6


def harness_p50_ms(session: Any, feeds: dict[str, np.ndarray], warmup: int = WARMUP, runs: int = RUNS) -> float:
    """p50 (ms) of the one timing loop around a backends Session, as compressor/measure/worker.py times it."""
    from compressor.measure.timing import TimingSettings, time_session

    settings = TimingSettings(warmup_runs=warmup, warmup_seconds=0.0, min_runs=runs, min_seconds=0.0)
    return time_session(session, feeds, settings).p50_ms


def worker_p50_ms(artifact: Any, samples: Any, runs: int = RUNS) -> float:
    """The p50 (ms) ``compressor.measure.harness.measure`` reports from a fresh worker process."""
    from compressor.measure.harness import measure
    from compressor.measure.timing import TimingSettings

    settings = TimingSettings(warmup_runs=WARMUP, warmup_seconds=0.0, min_runs=runs, min_seconds=0.0)
    return measure(artifact, "onnxruntime", "cpu", 1, 1, settings, samples)["p50_ms"]


def compare(artifact: Any, rounds: int, worker: bool = True) -> dict[str, float]:
    """Median over interleaved rounds of each way's p50 (ms): bare, harness and (optionally) worker."""
    from backends import get_runtime
    from compressor.measure.harness import batch_feeds, random_samples

    samples = random_samples(artifact)
    feeds = batch_feeds(artifact, samples, 1)
    session = get_runtime("onnxruntime").open(artifact, device="cpu", threads=1)
    bare = session.inference_session  # the same InferenceSession, toolchain options: only the timing differs
    ways: dict[str, Callable[[], float]] = {"bare": lambda: bare_p50_ms(bare, feeds),
                                            "harness": lambda: harness_p50_ms(session, feeds)}
    if worker:
        ways["worker"] = lambda: worker_p50_ms(artifact, samples)
    per_round: dict[str, list[float]] = {name: [] for name in ways}
    for r in range(rounds):
        for name in (list(ways) if r % 2 == 0 else list(reversed(ways))):
            per_round[name].append(ways[name]())
    session.close()
    return {name: statistics.median(values) for name, values in per_round.items()}


def rows(model: str, p50: dict[str, float]) -> list[list[str]]:
    bare_us = p50["bare"] * 1000
    out = []
    for way in (w for w in p50 if w != "bare"):
        us = p50[way] * 1000
        diff = us - bare_us
        pct = 100 * diff / bare_us
        ok = "yes" if pct <= TARGET_PCT and diff <= TARGET_US else "no"
        out.append([model, way, f"{bare_us:.2f}", f"{us:.2f}", f"{diff:+.2f}", f"{pct:+.1f}%", ok])
    return out


def main() -> None:
    from benchmarks.suite import markdown_table
    from compressor.measure.environment import cpu_info

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--no-worker", action="store_true", help="skip the fresh-process figure")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="harness-overhead-"))
    out.mkdir(parents=True, exist_ok=True)
    models = {"identity (16 floats)": identity_onnx(out / "identity.onnx"),
              "digits CNN fp32": digits_fp32_onnx(out / "digits")}
    table = []
    for name, path in models.items():
        table += rows(name, compare(onnx_artifact(path), args.rounds, worker=not args.no_worker))
    cpu = cpu_info()
    print(f"CPU: {cpu['model']}; onnxruntime:cpu, batch 1, 1 thread; {args.rounds} interleaved rounds of "
          f"{RUNS} runs, medians of the rounds' p50\n")
    print(markdown_table(["model", "harness", "bare p50 µs", "harness p50 µs", "diff µs", "diff %",
                          f"within {TARGET_PCT:g}% and {TARGET_US:g} µs"], table))


if __name__ == "__main__":
    main()
