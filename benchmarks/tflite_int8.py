"""TFLite full-int8 vs float32 on LiteRT: latency ratio of the keras_mnist sample's two files.

Both files come from the sample pipeline (convert.tflite, quantize none and int8), are opened on
the litert runtime (1 thread, XNNPACK) and timed interleaved in one process at batch 1 and 32;
the figure is the median over rounds of each round's p50. Also the PyTorch digits CNN through
litert-torch (fp32 vs PT2E int8), for the same ratio on the other converter.

    python -m benchmarks.tflite_int8 [--rounds 9] [--out DIR] [--no-torch]
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def build(sample: str, variants: list[str], out: Path) -> tuple[dict[str, object], object, dict]:
    """Run the sample's named variants (no measurements); their .tflite artifacts, the data, the results."""
    from compressor import run_pipeline
    from compressor.artifact import Artifact
    from compressor.data import load_bundle
    from compressor.formats import Format
    from compressor.frameworks._litert import tflite_signature
    from compressor.run.pipeline import load_pipeline

    pipeline = load_pipeline(ROOT / "samples" / sample / "pipeline.yaml")
    pipeline.select(variants)
    results = run_pipeline(pipeline, out, benchmark=False)
    arts = {}
    for v in results["variants"]:
        if v["status"] != "ok":
            raise SystemExit(f"{sample} variant {v['name']} failed: {v['error']}")
        path = out / v["artifact"]["path"]
        arts[v["name"]] = Artifact(Format.TFLITE, path, tflite_signature(path)[0], v["artifact"]["sha256"])
    return arts, load_bundle(pipeline.spec.data, pipeline.resolve), results


def latency_rows(label: str, arts: dict[str, object], data: object, results: dict, rounds: int) -> list[list]:
    from backends import get_runtime
    from compressor.data import feeds_for
    from compressor.measure.compare import interleaved_p50

    sessions = {n: get_runtime("litert").open(a, threads=1) for n, a in arts.items()}
    samples = data.split("evaluation").inputs
    lat = {}
    for batch in (1, 32):
        runs = {}
        for name, session in sessions.items():
            feeds = feeds_for(arts[name].signature, {k: v[np.arange(batch) % len(v)] for k, v in samples.items()})
            runs[name] = (lambda s=session, f=feeds: s.run(f))
        lat[batch] = interleaved_p50(runs, rounds=rounds)
    by = {v["name"]: v for v in results["variants"]}
    fp32, int8 = list(arts)
    return [[label, name, by[name]["metric"], by[name]["artifact"]["size_bytes"] // 1024, lat[1][name],
             lat[1][name] / lat[1][fp32], lat[32][name], lat[32][name] / lat[32][fp32]] for name in (fp32, int8)]


def main() -> None:
    from benchmarks.suite import markdown_table
    from compressor.measure.environment import cpu_info

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch (litert-torch) pair")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="tflite-int8-"))
    rows = []
    arts, data, results = build("keras_mnist", ["tflite-fp32", "tflite-int8"], out / "keras")
    rows += latency_rows("Keras MNIST CNN (TFLite converter)", arts, data, results, args.rounds)
    if not args.no_torch:
        from samples.digits_cnn.train import ensure_weights

        ensure_weights()
        arts, data, results = build("digits_cnn", ["fp32-tflite", "int8-tflite"], out / "torch")
        rows += latency_rows("digits CNN (litert-torch)", arts, data, results, args.rounds)
    cpu = cpu_info()
    print(f"CPU: {cpu['model']}; ISA: {', '.join(cpu['isa'])}; litert:cpu, 1 thread, XNNPACK; "
          f"{args.rounds} interleaved rounds, medians of p50\n")
    print(markdown_table(["model", "variant", "accuracy", "KiB", "p50 b1 ms", "b1 int8/fp32", "p50 b32 ms",
                          "b32 int8/fp32"], rows))


if __name__ == "__main__":
    main()
