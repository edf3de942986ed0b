"""MiniLM (all-MiniLM-L6-v2) fp32 vs each compressed variant on onnxruntime:cpu.

Builds the variants of samples/minilm/pipeline.yaml through the pipeline (kept in the shared cache), then
for each: mean / min cosine of its embeddings to the fp32 ONNX model's on all 240 sentences, the
leave-one-out nearest-centroid topic accuracy of its embeddings, the file size, and p50 latency at
batch 8 x sequence 128 with 1 thread, all models timed interleaved in one process (medians over
rounds).

    python -m benchmarks.minilm_variants [--rounds 5] [--out runs/minilm]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "minilm"


def build(out: Path, variants: list[str] | None) -> dict[str, Path]:
    """Run the sample pipeline without its own benchmarks; return variant -> ONNX path."""
    from compressor import run_pipeline
    from compressor.run.pipeline import load_pipeline

    pipeline = load_pipeline(SAMPLE / "pipeline.yaml")
    if variants:
        pipeline.select(variants)
    results = run_pipeline(pipeline, out, benchmark=False)
    failed = {v["name"]: v["error"] for v in results["variants"] if v["status"] != "ok"}
    if failed:
        raise SystemExit(f"variants failed: {failed}")
    return {v["name"]: out / v["artifact"]["path"] for v in results["variants"]}


def latency_feed(batch: int = 8, seq: int = 128) -> dict[str, np.ndarray]:
    """batch x seq real tokens: each row a run of the sample's sentences, truncated to seq."""
    from samples.minilm.data import encode, sentences

    texts = sentences()[1]
    rows = [" ".join(texts[(i * 15 + j) % len(texts)] for j in range(15)) for i in range(batch)]
    feed = encode(rows, max_length=seq)
    assert feed["input_ids"].shape == (batch, seq) and feed["attention_mask"].all()
    return feed


def embed(session: object, data: dict[str, np.ndarray], batch: int = 32) -> np.ndarray:
    n = len(data["input_ids"])
    return np.concatenate([session.run(None, {k: v[i:i + batch] for k, v in data.items()})[0]
                           for i in range(0, n, batch)])


def main() -> None:
    from benchmarks.suite import markdown_table, ort_session
    from compressor.measure.compare import interleaved_p50
    from compressor.measure.environment import cpu_info
    from compressor.metrics import cosine_rows
    from samples.minilm.data import load
    from samples.minilm.metrics import centroid_accuracy

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("runs/minilm"))
    parser.add_argument("--variant", action="append", help="only these variants (fp32 is always included)")
    args = parser.parse_args()
    variants = sorted(set(args.variant) | {"fp32"}) if args.variant else None
    models = build(args.out, variants)
    data = load()
    inputs = {"input_ids": data["x.input_ids"], "attention_mask": data["x.attention_mask"]}
    sessions = {name: ort_session(str(p)) for name, p in models.items()}
    emb = {name: embed(s, inputs) for name, s in sessions.items()}
    feed = latency_feed()
    lat = interleaved_p50({n: (lambda s=s: s.run(None, feed)) for n, s in sessions.items()}, rounds=args.rounds)
    rows = []
    for name in sessions:
        cos = cosine_rows(emb[name], emb["fp32"])
        rows.append([name, float(cos.mean()), float(cos.min()), centroid_accuracy(emb[name], data["y"]),
                     models[name].stat().st_size // 1024, lat[name], lat["fp32"] / lat[name]])
    cpu = cpu_info()
    print(f"CPU: {cpu['model']}; ISA: {', '.join(cpu['isa'])}; onnxruntime:cpu, 1 thread, batch 8 x sequence 128; "
          f"{args.rounds} interleaved rounds, medians; cosine and topic accuracy on {len(data['y'])} sentences\n")
    print(markdown_table(["variant", "mean cosine vs fp32", "min cosine", "topic accuracy", "KiB", "p50 ms",
                          "speed-up vs fp32"], rows))


if __name__ == "__main__":
    main()
