"""Real photos for the zoo's image models: crops of scikit-learn's two sample photos (china.jpg and
flower.jpg, shipped inside scikit-learn), seeded, resized with Pillow.

Used as ``data: {factory: benchmarks.zoo.data:imagenet_crops}`` (MobileNetV2: 224x224, ImageNet
normalization, labels = the fp32 PyTorch model's top-1, so accuracy reads as top-1 agreement with
fp32) and ``benchmarks.zoo.data:face_crops`` (MTCNN ONet: 48x48, MTCNN's (x - 127.5) / 128, no labels).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32).reshape(1, 3, 1, 1)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32).reshape(1, 3, 1, 1)


def photo_crops(count: int, size: int, min_side: int, seed: int = 0) -> np.ndarray:
    """``count`` random square crops (side in [min_side, 427], random place and flip) of the sample
    photos, resized to ``size`` x ``size``: uint8 array (N, 3, size, size)."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    photos = load_sample_images().images
    rng = np.random.default_rng(seed)
    crops = np.empty((count, 3, size, size), dtype=np.uint8)
    for i in range(count):
        photo = photos[i % len(photos)]
        h, w = photo.shape[:2]
        side = int(rng.integers(min_side, min(h, w) + 1))
        top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        img = Image.fromarray(photo[top:top + side, left:left + side]).resize((size, size), Image.BILINEAR)
        arr = np.asarray(img)
        crops[i] = (arr[:, ::-1] if rng.random() < 0.5 else arr).transpose(2, 0, 1)
    return crops


@lru_cache(maxsize=1)
def imagenet_crops(count: int = 384) -> dict[str, np.ndarray]:
    """224x224 ImageNet-normalized crops; ``y``: the fp32 PyTorch MobileNetV2's top-1 class."""
    import torch

    from samples.mobilenet_transfer.model import imagenet_mobilenet_v2

    x = (photo_crops(count, 224, 96, seed=1).astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    model = imagenet_mobilenet_v2(input_size=None).eval()
    with torch.inference_mode():
        y = np.concatenate([model(torch.from_numpy(x[i:i + 64])).argmax(1).numpy() for i in range(0, count, 64)])
    return {"x": x.astype(np.float32), "y": y.astype(np.int64)}


def face_crops(count: int = 512) -> dict[str, np.ndarray]:
    """48x48 crops scaled as MTCNN scales its input: (pixel - 127.5) / 128."""
    return {"x": (photo_crops(count, 48, 32, seed=2).astype(np.float32) - 127.5) / 128.0}
