"""A ResNet-18-style network for the 28x28 MNIST digits, and its dense training (cached in a folder).

ResNet-18's topology (He et al. 2016): a 3x3 stem, four stages of two BasicBlocks (3x3 conv, BN,
ReLU, 3x3 conv, BN, added to the block's input; a 1x1 conv + BN shortcut where the shape changes),
global average pooling and a Linear head: 17 convs and one Linear. The widths are a quarter of
ImageNet ResNet-18's (16-32-64-128) and the stem's stride 2 takes 28x28 to 14x14 (ImageNet's stem and
max-pool take 224 to 56), so it trains on two CPU cores in minutes.
Every block is a residual add: the hand-written pruning walk could prune none of it.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn


class BasicBlock(nn.Module):
    """conv-bn-relu-conv-bn added to the (projected) input, then ReLU."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class DigitsResNet18(nn.Module):
    """ResNet-18 layout for (N, 1, 28, 28) digits: stages of ``width`` x (1, 2, 4, 8) channels."""

    def __init__(self, width: int = 16, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, width, 3, 2, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        blocks, cin = [], width
        for i, mult in enumerate((1, 2, 4, 8)):
            cout = width * mult
            blocks += [BasicBlock(cin, cout, 1 if i == 0 else 2), BasicBlock(cout, cout, 1)]
            cin = cout
        self.layers = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(self.stem(x))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


FACTORY = "benchmarks.digits_resnet:DigitsResNet18"


def ensure_weights(folder: Path, epochs: int = 3, lr: float = 2e-3) -> Path:
    """Train on the MNIST training split once (seeded) and keep the weights in ``folder``."""
    from safetensors.torch import save_file

    from compressor.artifact import BATCH, Signature, TensorSpec
    from compressor.data import load_bundle
    from compressor.passes._torch_fit import fit
    from compressor.run.pipeline import DataSpec

    path = folder / f"digits_resnet18-e{epochs}.safetensors"
    if path.exists():
        return path
    torch.manual_seed(0)
    model = DigitsResNet18()
    data = load_bundle(DataSpec(source="mnist"))
    signature = Signature(inputs=(TensorSpec("input", (BATCH, 1, 28, 28), "float32"),),
                          outputs=(TensorSpec("output", (BATCH, 10), "float32"),))
    fit(model, data.split("training"), signature, epochs=epochs, lr=lr, batch_size=64, seed=0, say=print)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
    tmp.replace(path)
    return path
