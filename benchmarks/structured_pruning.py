"""Structured pruning on residual, depthwise and attention networks: params, MACs, metric and ORT latency.

Three workloads, each pruned by ``prune.structured`` (Torch-Pruning's dependency graph), fine-tuned,
exported to ONNX and timed side by side with its unpruned model on onnxruntime:cpu, 1 thread,
interleaved rounds, medians of p50 (``compressor.measure.compare.interleaved_rounds``):

- ``resnet``: a ResNet-18-style network trained here on the 5,000 MNIST digits
  (``benchmarks/digits_resnet.py``), 50% of every channel group removed (``round_to: 8``); the dense
  model gets the same fine-tuning epochs as the pruned one.
- ``mobilenet``: the ImageNet MobileNetV2 of ``samples/mobilenet_transfer`` transferred to the digits,
  then pruned through all its blocks, residual ones included (``round_to: 16``); the dense model gets the
  same fine-tuning (``train.finetune`` on all layers, same epochs and lr) as the pruned one.
- ``minilm``: all-MiniLM-L6-v2 (``samples/minilm``) with half of its MLP width and a third of its
  attention heads removed and distilled from the unpruned model in one ``distill.kd`` step
  (``benchmarks/structured_minilm.py``), then dynamic int8 on top; judged by cosine to the original
  embeddings on held-out sentences and by topic accuracy, timed at 8 x 128 tokens.

Ratios are the median of the per-round ratios to the dense model, with their range over the rounds.
Trained weights and pass results stay in a cache folder (``--cache``, default ``.cache/structured-pruning``
in the repository, git-ignored), so a second run only measures.

    python -m benchmarks.structured_pruning [--workloads resnet,mobilenet,minilm] [--rounds 7]
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
HEAD = ["workload", "model", "params", "MACs", "metric", "p50 b1 ms", "p50 b32 ms", "b1 vs dense (range)",
        "b32 vs dense (range)"]


def cost_of(variant: dict[str, Any], dense: bool) -> tuple[Any, Any]:
    """(params, MACs) from the prune step's ledger entry: before for the dense model, after for the pruned."""
    rep = next(e["report"] for e in variant["ledger"] if e["pass"] == "prune.structured")
    return (rep["params_before"], rep["macs_before"]) if dense else (rep["params_after"], rep["macs_after"])


def image_rows(name: str, variants: dict[str, dict[str, Any]], out: Path, data: Any, rounds: int) -> list[list[Any]]:
    """The table rows of an image workload: dense and pruned, latency at batch 1 and 32 on real test digits."""
    from benchmarks.suite import onnx_rounds, ratio_cell

    test = data.split("evaluation")
    feeds = {b: {"input": np.ascontiguousarray(test.inputs["x"][np.arange(b) % len(test)])} for b in (1, 32)}
    lat = onnx_rounds({n: out / v["artifact"]["path"] for n, v in variants.items()}, feeds, rounds)
    rows = []
    for label, v in variants.items():
        params, macs = cost_of(variants["pruned"], dense=label == "dense")
        rows.append([name, label, params, macs, f"accuracy {v['metric']:.4f}", float(np.median(lat[1][label])),
                     float(np.median(lat[32][label])), ratio_cell(lat[1][label], lat[1]["dense"]),
                     ratio_cell(lat[32][label], lat[32]["dense"])])
    return rows


def resnet(args: argparse.Namespace) -> list[list[Any]]:
    """ResNet-18-style on MNIST digits: 50% of every channel group, fine-tuned."""
    from benchmarks.digits_resnet import FACTORY, ensure_weights
    from benchmarks.suite import run_variants
    from compressor.data import load_bundle
    from compressor.run.pipeline import DataSpec

    weights = ensure_weights(args.cache / "weights")
    prune = {"sparsity": 0.5, "round_to": 8, "finetune_epochs": args.finetune_epochs, "lr": 1e-3}
    raw = {"name": "digits-resnet18", "model": {"factory": FACTORY, "weights": str(weights)},
           "data": {"source": "mnist", "calibration": {"split": "train", "limit": 64}}, "metric": "accuracy",
           "budget": {"max_drop": 0.01}, "targets": ["onnxruntime:cpu"],
           "variants": {"dense": [{"train.finetune": {"epochs": args.finetune_epochs, "lr": 1e-3, "freeze": []}},
                                  "convert.onnx"],  # the same fine-tuning as the pruned model
                        "pruned": [{"prune.structured": prune}, "convert.onnx"]}}
    out = args.out / "resnet"
    variants = run_variants(raw, ROOT, out, args.cache / "compressor")
    variants["dense"]["ledger"] = variants["pruned"]["ledger"]  # its cost is the prune step's "before"
    return image_rows("ResNet-18-style, MNIST digits", variants, out, load_bundle(DataSpec(source="mnist")), args.rounds)


def mobilenet(args: argparse.Namespace) -> list[list[Any]]:
    """The sample's ImageNet MobileNetV2 transferred to digits, pruned through every block."""
    import yaml

    from benchmarks.suite import run_variants

    from compressor.data import load_bundle
    from compressor.run.pipeline import DataSpec

    folder = ROOT / "samples" / "mobilenet_transfer"
    raw = yaml.safe_load((folder / "pipeline.yaml").read_text())
    transfer = raw["variants"]["transfer"][0]
    prune = {"sparsity": args.mobilenet_sparsity, "round_to": args.mobilenet_round_to,
             "importance": args.mobilenet_importance, "finetune_epochs": args.finetune_epochs, "lr": 5e-4}
    # the dense model gets the fine-tuning the pruned one gets (all layers, same epochs and lr): a fair comparison
    finetune = {"train.finetune": {"epochs": args.finetune_epochs, "lr": 5e-4, "freeze": []}}
    # the transferred ImageNet model's logits are large: its float ONNX export differs by ~2e-4 (cosine 1.0)
    onnx = {"convert.onnx": {"atol": 1e-3}}
    raw["variants"] = {"dense": [transfer, finetune, onnx], "pruned": [transfer, {"prune.structured": prune}, onnx]}
    out = args.out / "mobilenet"
    variants = run_variants(raw, folder, out, args.cache / "compressor")
    variants["dense"]["ledger"] = variants["pruned"]["ledger"]
    return image_rows("MobileNetV2 (ImageNet) transfer", variants, out, load_bundle(DataSpec(source="mnist")),
                      args.rounds)


def main() -> None:
    from benchmarks.suite import markdown_table
    from compressor.measure.environment import cpu_info

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workloads", default="resnet,mobilenet,minilm")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--finetune-epochs", type=int, default=4)
    parser.add_argument("--mobilenet-sparsity", type=float, default=0.25)
    parser.add_argument("--mobilenet-round-to", type=int, default=16)
    parser.add_argument("--mobilenet-importance", default="l1", choices=["l1", "l2", "taylor", "hessian"])
    parser.add_argument("--distill-epochs", type=int, default=8)
    parser.add_argument("--distill-sentences", type=int, default=6000)
    parser.add_argument("--distill-lr", type=float, default=2e-4)
    parser.add_argument("--distill-schedule", default="constant", choices=["constant", "cosine"])
    parser.add_argument("--extra-sentences", type=int, default=0,
                        help="MiniLM: add this many docstring sentences of installed packages to the training split")
    parser.add_argument("--feature-weight", type=float, default=0.1)
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache" / "structured-pruning")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    args.out = args.out or args.cache / "runs"
    rows: list[list[Any]] = []
    for name in args.workloads.split(","):
        if name == "minilm":
            from benchmarks.structured_minilm import minilm

            new = minilm(args)
        else:
            new = {"resnet": resnet, "mobilenet": mobilenet}[name](args)
        print(markdown_table(HEAD, new), flush=True)
        rows += new
    cpu = cpu_info()
    print(f"\nCPU: {cpu['model']}; onnxruntime:cpu, 1 thread; {args.rounds} interleaved rounds, medians of p50. "
          f"MACs per sample from the torch model's Conv/Linear layers. MiniLM: batch 8 x 128 (its b32 column: "
          f"b8 x 128).\n")
    print(markdown_table(HEAD, rows))


if __name__ == "__main__":
    main()
