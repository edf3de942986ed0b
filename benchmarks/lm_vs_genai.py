"""Peer comparison: our tiny-LM ONNX variants against onnxruntime-genai's model builder on the same checkpoint.

The builder (``python -m onnxruntime_genai.models.builder -m HF_FOLDER -o OUT -p int4|fp32 -e cpu``, offline
on the local Hugging Face folder) writes its own graph (GroupQueryAttention, MatMulNBits, fused norms) with
the same input and output names as our export, so every model here is scored by the same code: held-out
perplexity on the pipeline's evaluation split (token-weighted, fixed context), greedy agreement with our fp32
ONNX (itself identical to the torch model: see the pipeline's generation table), prefill of one 128-token
held-out prompt and decode ms per token over 64 tokens at batch 1 with the cache, all in one process on
1 thread, the models timed in turn each round (interleaved), medians over rounds.

    python -m samples.tiny_lm.train                     # the checkpoint (cached)
    compressor run samples/tiny_lm/pipeline.yaml --out runs/tiny-lm
    python -m benchmarks.lm_vs_genai [--run runs/tiny-lm] [--rounds 5] [--out DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "tiny_lm"


class OrtLM:
    """An onnxruntime session fed and read by name: outputs as [logits, presents in the order of the past inputs]."""

    def __init__(self, path: Path) -> None:
        from benchmarks.suite import ort_session

        self.session = ort_session(str(path))
        self.past = [i for i in self.session.get_inputs() if i.name.startswith("past_key_values.")]
        self.outputs = ["logits"] + [i.name.replace("past_key_values.", "present.") for i in self.past]
        self.input_names = [i.name for i in self.session.get_inputs()]
        config = path.parent / "genai_config.json"  # the builder leaves the head size symbolic (kv_cache_dim)
        self.head_size = json.loads(config.read_text())["model"]["decoder"]["head_size"] if config.is_file() else None

    def empty(self, batch: int) -> list[np.ndarray]:
        """An empty cache: the past length 0, the head size from the graph or the builder's config."""
        shapes = [[batch, p.shape[1], 0, p.shape[3] if isinstance(p.shape[3], int) else self.head_size]
                  for p in self.past]
        return [np.zeros(shape, dtype=np.float32) for shape in shapes]

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(self.outputs, feeds)

    def cached(self) -> Any:
        """Our greedy decoder (compressor.measure.generation) on this session."""
        from compressor.measure.generation import CachedLM

        return CachedLM(self, [p.name for p in self.past], self.empty(1))

    def perplexity(self, split: Any, batch_size: int = 8) -> float:
        from compressor.metrics import get_metric

        logits = []
        for batch, _ in split.batches(batch_size):
            ids = batch["input_ids"]
            feeds = {"input_ids": ids, "attention_mask": batch["attention_mask"]}
            feeds.update(zip([p.name for p in self.past], self.empty(len(ids))))
            logits.append(self.run(feeds)[0])
        return get_metric("perplexity").fn(np.concatenate(logits), split.labels, None)


def build_peer(model_dir: Path, out: Path, precision: str) -> tuple[Path | None, str]:
    """The builder's model for ``precision`` (int4 / fp32), or None and its error line."""
    target = out / f"genai-{precision}"
    if (target / "model.onnx").is_file():
        return target / "model.onnx", ""
    cmd = [sys.executable, "-m", "onnxruntime_genai.models.builder", "-m", str(model_dir), "-o", str(target),
           "-p", precision, "-e", "cpu", "-c", str(out / "genai-cache")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if proc.returncode != 0 or not (target / "model.onnx").is_file():
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        return None, (lines[-1] if lines else f"exit {proc.returncode}")
    return target / "model.onnx", ""


def file_bytes(model: Path) -> int:
    """The model file and its external data beside it."""
    data = model.with_name(model.name + ".data")
    return model.stat().st_size + (data.stat().st_size if data.is_file() else 0)


def ours(run: Path, also: list[str] = ()) -> dict[str, Path]:
    """Our fp32 ONNX, our int4 variant with the lowest perplexity and the variants named in ``also``, from a run folder."""
    results = json.loads((run / "results.json").read_text())
    done = {v["name"]: v for v in results["variants"] if v.get("status") == "ok" and v["artifact"]["format"] == "onnx"}
    int4 = [v for n, v in done.items() if n.startswith("int4")]
    if "fp32" not in done or not int4:
        raise SystemExit(f"{run}/results.json has no fp32 and int4 ONNX variants; run samples/tiny_lm/pipeline.yaml.")
    best = min(int4, key=lambda v: v["metric"])
    missing = [n for n in also if n not in done]
    if missing:
        raise SystemExit(f"--also names {missing}, not ONNX variants of {run} ({', '.join(done)}).")
    chosen = {"fp32": done["fp32"], best["name"]: best, **{n: done[n] for n in also}}
    return {f"ours {n}": run / v["artifact"]["path"] for n, v in chosen.items()}


def main() -> None:
    from benchmarks.suite import markdown_table
    from compressor.data import load_bundle
    from compressor.measure.compare import ROUND, interleaved_p50
    from compressor.measure.environment import cpu_info
    from compressor.measure.generation import DecodeStepper
    from compressor.metrics import greedy_agreement
    from compressor.run.pipeline import load_pipeline

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=Path("runs/tiny-lm"), help="a run folder of the tiny_lm pipeline")
    parser.add_argument("--model", type=Path, default=SAMPLE / "model", help="the Hugging Face folder")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--also", default="", help="more of our variants to time, comma-separated")
    parser.add_argument("--out", type=Path, default=None, help="where the builder writes (reused when there)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="lm-vs-genai-"))
    models = ours(args.run, [n for n in args.also.split(",") if n])
    for precision in ("fp32", "int4"):
        path, error = build_peer(args.model, out, precision)
        if path is None:
            print(f"onnxruntime-genai builder -p {precision} failed: {error}")
        else:
            models[f"genai builder {precision}"] = path
    pipeline = load_pipeline(SAMPLE / "pipeline.yaml")
    split = load_bundle(pipeline.spec.data, pipeline.resolve).split("evaluation")
    gen = pipeline.spec.generation
    prompts = split.inputs["input_ids"][: gen.prompts, : gen.prompt_tokens]
    lms = {name: OrtLM(path) for name, path in models.items()}
    decoders = {name: lm.cached() for name, lm in lms.items()}
    tokens = {name: [d.greedy(p, args.new_tokens) for p in prompts] for name, d in decoders.items()}
    reference = tokens["ours fp32"]
    prefill = interleaved_p50({n: (lambda d=d: d.prefill(prompts[0])) for n, d in decoders.items()}, args.rounds)
    steps = replace(ROUND, min_runs=args.new_tokens - 1, min_seconds=0.0)
    decode = interleaved_p50({n: DecodeStepper(d, prompts[0], args.new_tokens) for n, d in decoders.items()},
                             args.rounds, steps)
    base = decode["ours fp32"]
    rows = [[name, round(lms[name].perplexity(split), 3),
             round(float(np.mean([greedy_agreement(t, r) for t, r in zip(tokens[name], reference)])), 3),
             round(prefill[name], 3), round(decode[name], 4), round(base / decode[name], 2),
             round(file_bytes(path) / 1024, 1)] for name, path in models.items()]
    cpu = cpu_info()
    print(f"CPU: {cpu['model']}; 1 thread; batch 1; {len(split)} held-out samples of {split.inputs['input_ids'].shape[1]} "
          f"tokens; prompt {gen.prompt_tokens} tokens, {args.new_tokens} new; {args.rounds} interleaved rounds, medians\n")
    print(markdown_table(["model", "perplexity", "greedy agreement vs ours fp32", "prefill ms", "decode ms/token",
                          "decode speed-up vs ours fp32", "file KiB"], rows))


if __name__ == "__main__":
    main()
