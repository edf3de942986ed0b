"""Structured pruning pays on a CPU: remove 25% / 50% of the digits CNN's conv filters, measure ORT latency.

The digits CNN (samples/digits_cnn, committed weights) is pruned by ``prune.structured`` (L1 norm,
conv layers only, fine-tuned), exported with ``convert.onnx`` and timed on onnxruntime:cpu with one
thread at batch 1 and 32, all models interleaved in one process (medians over rounds of p50s).

    python -m benchmarks.structured_latency [--rounds 7] [--finetune-epochs 4] [--out DIR]
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "digits_cnn"
FRACTIONS = (0.25, 0.5)


def build(out: Path, finetune_epochs: int) -> tuple[dict[str, Any], Any]:
    """Run the dense and pruned variants through the pipeline; return results by variant, and the data."""
    import yaml

    from compressor import run_pipeline
    from compressor.data import load_bundle
    from compressor.run.pipeline import parse_pipeline
    from samples.digits_cnn.train import ensure_weights

    ensure_weights()
    raw = yaml.safe_load((SAMPLE / "pipeline.yaml").read_text())
    raw["variants"] = {"dense": ["convert.onnx"]}
    for f in FRACTIONS:
        raw["variants"][f"{f:.0%} filters removed"] = [
            {"prune.structured": {"sparsity": f, "include": ["conv*"], "finetune_epochs": finetune_epochs}},
            "convert.onnx"]
    pipeline = parse_pipeline(raw, SAMPLE)
    results = run_pipeline(pipeline, out, benchmark=False)
    return {v["name"]: v for v in results["variants"]}, load_bundle(pipeline.spec.data)


def main() -> None:
    from benchmarks.suite import markdown_table, ort_session
    from compressor.measure.compare import interleaved_p50
    from compressor.measure.environment import cpu_info

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--finetune-epochs", type=int, default=4)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="structured-latency-"))
    variants, data = build(out, args.finetune_epochs)
    failed = {n: v["error"] for n, v in variants.items() if v["status"] != "ok"}
    if failed:
        raise SystemExit(f"variants failed: {failed}")
    sessions = {n: ort_session(str(out / v["artifact"]["path"])) for n, v in variants.items()}
    test = data.split("evaluation")
    lat = {}
    for batch in (1, 32):
        x = np.ascontiguousarray(test.inputs["x"][np.arange(batch) % len(test)])
        runs = {n: (lambda s=s: s.run(None, {s.get_inputs()[0].name: x})) for n, s in sessions.items()}
        lat[batch] = interleaved_p50(runs, rounds=args.rounds)
    rows = []
    for name, v in variants.items():
        rep = v["ledger"][0]["report"] if v["ledger"][0]["pass"] == "prune.structured" else {}
        widths = rep.get("widths", {})
        rows.append([name, "/".join(str(widths.get(c, [0, w])[1]) for c, w in (("conv1", 32), ("conv2", 64))),
                     rep.get("params_after", rep.get("params_before", "")) or "", rep.get("macs_after", "") or "",
                     v["metric"], round(100 * v["metric_drop"], 2), lat[1][name], lat[1][name] / lat[1]["dense"],
                     lat[32][name], lat[32][name] / lat[32]["dense"]])
    dense_cost = variants[f"{FRACTIONS[0]:.0%} filters removed"]["ledger"][0]["report"]
    rows[0][2], rows[0][3] = dense_cost["params_before"], dense_cost["macs_before"]
    cpu = cpu_info()
    print(f"CPU: {cpu['model']}; ISA: {', '.join(cpu['isa'])}; onnxruntime:cpu, 1 thread; {args.rounds} "
          f"interleaved rounds, medians of p50. Accuracy on the held-out digits; drop in points vs dense.\n")
    print(markdown_table(["variant", "conv1/conv2 filters", "params", "MACs", "accuracy", "drop (points)",
                          "p50 b1 ms", "b1 vs dense", "p50 b32 ms", "b32 vs dense"], rows))


if __name__ == "__main__":
    main()
