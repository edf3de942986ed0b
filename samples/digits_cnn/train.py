"""Train the digits CNN on scikit-learn's digits (upsampled to 28x28): seeded, seconds on a CPU.

    python -m samples.digits_cnn.train [--epochs 8] [--out samples/digits_cnn/weights.safetensors]
"""
from __future__ import annotations

import argparse
from pathlib import Path

HERE = Path(__file__).resolve().parent
WEIGHTS = HERE / "weights.safetensors"


def train(out: Path = WEIGHTS, epochs: int = 8, seed: int = 0, size: int = 28, **kwargs: int) -> float:
    """Train on the train split the pipeline uses; save safetensors; return test accuracy."""
    import numpy as np
    import torch
    from safetensors.torch import save_file

    from compressor.artifact import BATCH, Signature, TensorSpec
    from compressor.cache import temp_sibling
    from compressor.data import load_bundle
    from compressor.passes._torch_fit import fit
    from compressor.run.pipeline import DataSpec
    from samples.digits_cnn.model import DigitsCNN

    torch.manual_seed(seed)
    data = load_bundle(DataSpec(source="digits", size=size, seed=0))
    model = DigitsCNN(**kwargs)
    signature = Signature((TensorSpec("input", (BATCH, 1, size, size)),))
    fit(model, data.split("training"), signature, epochs=epochs, lr=2e-3, seed=seed)
    test = data.split("evaluation")
    with torch.inference_mode():
        pred = model(torch.from_numpy(test.inputs["x"])).argmax(1).numpy()
    acc = float(np.mean(pred == test.labels))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(out)  # unique to this process: two trainings at once never share a temp file
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
    tmp.replace(out)
    return acc


def ensure_weights() -> Path:
    """Train the sample's weights if they are not there yet."""
    if not WEIGHTS.exists():
        print(f"training the digits CNN into {WEIGHTS} ...")
        print(f"test accuracy {train():.4f}")
    return WEIGHTS


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=WEIGHTS)
    args = parser.parse_args()
    print(f"test accuracy {train(args.out, args.epochs, args.seed):.4f}")
