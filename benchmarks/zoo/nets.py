"""Two zoo models that need a little code: MTCNN's ONet with facenet-pytorch's shipped weights,
and a small residual CNN trained on the digits (seeded, cached).

facenet-pytorch is installed ``--no-deps`` and never imported (its package imports torchvision):
its weight file is found by ``importlib.util.find_spec`` and read with ``torch.load(weights_only=True)``,
tensors only.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

FACENET_PACKAGE = "facenet_pytorch"


def facenet_weights(net: str) -> Path:
    """The path of one of facenet-pytorch's shipped MTCNN weight files (pnet / rnet / onet)."""
    from compressor.errors import ModelLoadError

    spec = importlib.util.find_spec(FACENET_PACKAGE)
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / f"{net}.pt" if spec else None
    if path is None or not path.is_file():
        raise ModelLoadError(f"facenet-pytorch's {net}.pt is not installed; run "
                             f"'pip install --no-deps facenet-pytorch' (or 'make install').")
    return path


class ONet(nn.Module):
    """MTCNN's output network: a 48x48 RGB face crop -> (box offsets, 5 landmarks, face probability).

    Layer names match facenet-pytorch's onet.pt; the flatten goes through (N, W, H, C) as the
    Caffe-trained dense layer expects.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1, self.dense6_2, self.dense6_3 = nn.Linear(256, 2), nn.Linear(256, 4), nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu2(self.conv2(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu3(self.conv3(x)), 2, 2, ceil_mode=True)
        x = self.prelu4(self.conv4(x))
        x = self.prelu5(self.dense5(x.permute(0, 3, 2, 1).flatten(1)))
        return self.dense6_2(x), self.dense6_3(x), torch.softmax(self.dense6_1(x), dim=1)


def mtcnn_onet() -> ONet:
    """ONet with facenet-pytorch's trained weights (read as tensors; nothing of the package runs)."""
    model = ONet()
    model.load_state_dict(torch.load(facenet_weights("onet"), map_location="cpu", weights_only=True))
    return model.eval()


class BasicBlock(nn.Module):
    """conv-bn-relu, conv-bn, plus the input (a 1x1 strided projection when the shape changes), relu."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        self.shortcut = nn.Identity() if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + self.shortcut(x))


class DigitsResNet(nn.Module):
    """A ResNet-style CNN for 28x28 gray digits: stem, three stages of two basic blocks, pool, fc."""

    def __init__(self, widths: tuple[int, int, int] = (16, 32, 64), num_classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU())
        blocks, cin = [], widths[0]
        for i, w in enumerate(widths):
            blocks += [BasicBlock(cin, w, 1 if i == 0 else 2), BasicBlock(w, w, 1)]
            cin = w
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(self.blocks(self.stem(x)), 1)
        return self.fc(torch.flatten(x, 1))


def train_digits_resnet(out: Path, epochs: int = 4, seed: int = 0) -> float:
    """Train DigitsResNet on the digits train split (seeded); save safetensors atomically; test accuracy."""
    import numpy as np
    from safetensors.torch import save_file

    from compressor.artifact import BATCH, Signature, TensorSpec
    from compressor.cache import temp_sibling
    from compressor.data import load_bundle
    from compressor.passes._torch_fit import fit
    from compressor.run.pipeline import DataSpec

    torch.manual_seed(seed)
    data = load_bundle(DataSpec(source="digits", size=28, seed=0))
    model = DigitsResNet()
    fit(model, data.split("training"), Signature((TensorSpec("input", (BATCH, 1, 28, 28)),)),
        epochs=epochs, lr=2e-3, seed=seed)
    model.eval()
    test = data.split("evaluation")
    with torch.inference_mode():
        acc = float(np.mean(model(torch.from_numpy(test.inputs["x"])).argmax(1).numpy() == test.labels))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(out)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
    tmp.replace(out)
    return acc
