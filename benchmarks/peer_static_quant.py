"""Peer comparison: our quantize.onnx.static vs onnxruntime's quantize_static with its defaults.

Same fp32 digits CNN ONNX, same 256 calibration samples, 1 thread, batch 1 and 32, timed
interleaved in one process. Prints accuracy and latency ratios as a table.

    python -m benchmarks.peer_static_quant [--rounds 7] [--out DIR]
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "digits_cnn"


def build(out: Path) -> tuple[dict[str, Path], object]:
    """Run our pipeline (fp32 and our int8), then ORT's default quantize_static on the same fp32."""
    from onnxruntime.quantization import quantize_static

    from compressor import run_pipeline
    from compressor.data import load_bundle
    from compressor.passes.quantize._onnx import SplitReader
    from compressor.run.pipeline import load_pipeline
    from samples.digits_cnn.train import ensure_weights

    ensure_weights()
    pipeline = load_pipeline(SAMPLE / "pipeline.yaml")
    pipeline.select(["fp32-onnx", "int8-onnx", "int8-onnx-fast"])
    results = run_pipeline(pipeline, out, benchmark=False)
    paths = {v["name"]: out / v["artifact"]["path"] for v in results["variants"]}
    data = load_bundle(pipeline.spec.data)
    from compressor.frameworks._onnx import onnx_signature

    sig = onnx_signature(paths["fp32-onnx"])
    peer = out / "ort-default-int8.onnx"
    quantize_static(str(paths["fp32-onnx"]), str(peer), SplitReader(data.split("calibration"), sig))  # ORT defaults
    return {"fp32 (reference)": paths["fp32-onnx"], "ours: quantize.onnx.static": paths["int8-onnx"],
            "ours: int8-onnx-fast (conv1 float, baked)": paths["int8-onnx-fast"],
            "onnxruntime quantize_static (defaults)": peer}, data


def accuracy(session: object, split: object) -> float:
    x = split.inputs["x"]
    name = session.get_inputs()[0].name
    pred = np.concatenate([session.run(None, {name: x[i:i + 128]})[0].argmax(1) for i in range(0, len(x), 128)])
    return float(np.mean(pred == split.labels))


def main() -> None:
    from benchmarks.suite import markdown_table, ort_session
    from compressor.measure.compare import interleaved_p50
    from compressor.measure.environment import cpu_info

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="peer-static-"))
    models, data = build(out)
    test = data.split("evaluation")
    sessions = {name: ort_session(str(p)) for name, p in models.items()}
    rows, lat = [], {}
    for batch in (1, 32):
        x = np.ascontiguousarray(test.inputs["x"][np.arange(batch) % len(test)])
        runs = {n: (lambda s=s: s.run(None, {s.get_inputs()[0].name: x})) for n, s in sessions.items()}
        lat[batch] = interleaved_p50(runs, rounds=args.rounds)
    base = "fp32 (reference)"
    peer = "onnxruntime quantize_static (defaults)"
    for name, s in sessions.items():
        rows.append([name, accuracy(s, test), models[name].stat().st_size // 1024,
                     lat[1][name], lat[1][base] / lat[1][name], lat[32][name], lat[32][base] / lat[32][name],
                     lat[32][peer] / lat[32][name]])
    cpu = cpu_info()
    print(f"CPU: {cpu['model']}; ISA: {', '.join(cpu['isa'])}; 1 thread; {args.rounds} interleaved rounds, medians\n")
    print(markdown_table(["model", "accuracy", "KiB", "p50 b1 ms", "speed-up b1 vs fp32", "p50 b32 ms",
                          "speed-up b32 vs fp32", "speed-up b32 vs ORT default"], rows))


if __name__ == "__main__":
    main()
