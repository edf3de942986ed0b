"""Models for the MNIST experiments (28x28 gray digits, 10 classes), and the dense training they start from."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn


class LeNet300100(nn.Module):
    """LeCun et al.'s fully connected LeNet-300-100: 784-300-100-10 (266k weights)."""

    WIDTH_KWARGS = {"h1": "fc1", "h2": "fc2"}

    def __init__(self, h1: int = 300, h2: int = 100) -> None:
        super().__init__()
        self.fc1 = nn.Linear(784, h1)
        self.fc2 = nn.Linear(h1, h2)
        self.fc3 = nn.Linear(h2, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(x, 1)
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


class LeNet5(nn.Module):
    """Caffe's LeNet-5 as in Han et al. 2015: conv 20@5x5, pool, conv 50@5x5, pool, fc 500, fc 10 (431k weights)."""

    WIDTH_KWARGS = {"c1": "conv1", "c2": "conv2", "hidden": "fc1"}

    def __init__(self, c1: int = 20, c2: int = 50, hidden: int = 500) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, c1, 5)
        self.conv2 = nn.Conv2d(c1, c2, 5)
        self.fc1 = nn.Linear(c2 * 4 * 4, hidden)
        self.fc2 = nn.Linear(hidden, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.max_pool2d(self.conv1(x), 2)
        x = nn.functional.max_pool2d(self.conv2(x), 2)
        return self.fc2(torch.relu(self.fc1(torch.flatten(x, 1))))


class MLP(nn.Module):
    """784-hidden...-10 with ReLU and optional dropout: Hinton's distillation teacher (1200-1200) and students."""

    WIDTH_KWARGS: dict[str, str] = {}

    def __init__(self, hidden: list[int] | tuple[int, ...] = (1200, 1200), dropout: float = 0.0) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = 784
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()] + ([nn.Dropout(dropout)] if dropout else [])
            width = h
        layers.append(nn.Linear(width, 10))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def mnist_bundle(seed: int = 0) -> Any:
    """The 5,000 bundled MNIST digits: 3,750 train, 1,250 held-out test (stratified, seeded)."""
    from compressor.data import load_bundle
    from compressor.run.pipeline import DataSpec

    return load_bundle(DataSpec(source="mnist", seed=seed))


SIGNATURE_SHAPE = (1, 28, 28)


def signature() -> Any:
    from compressor.artifact import BATCH, Signature, TensorSpec

    return Signature((TensorSpec("input", (BATCH, *SIGNATURE_SHAPE)),), (TensorSpec("output", (BATCH, 10)),))


def accuracy(module: nn.Module, split: Any) -> float:
    """Top-1 accuracy of ``module`` on a split."""
    module.eval()
    with torch.inference_mode():
        pred = torch.cat([module(torch.from_numpy(b["x"])).argmax(1) for b, _ in split.batches(500)])
    return float((pred.numpy() == split.labels).mean())


def train_dense(module: nn.Module, data: Any, epochs: int, lr: float = 1e-3, seed: int = 0,
                out: Path | None = None) -> float:
    """Train on the training split with the toolchain's loop; save safetensors to ``out``; return test accuracy.

    ``epochs`` at ``lr``, then half as many at ``lr / 10`` (a step decay, so the dense model is converged
    before anything is pruned from it).
    """
    from safetensors.torch import save_file

    from compressor.passes._torch_fit import fit

    torch.manual_seed(seed)
    fit(module, data.split("training"), signature(), epochs=epochs, lr=lr, seed=seed)
    fit(module, data.split("training"), signature(), epochs=max(1, epochs // 2), lr=lr / 10, seed=seed + 1)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(out))
    return accuracy(module, data.split("evaluation"))
