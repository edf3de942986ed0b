"""benchmarks.zoo: its models load offline with their shipped weights, its data is real and seeded,
and its summary counts what it says (behaviour only; no timing)."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from benchmarks.zoo.__main__ import quality, ratio, summary_rows
from benchmarks.zoo.data import photo_crops
from benchmarks.zoo.models import NAMES, zoo


def test_zoo_names_six_models_and_refuses_an_unknown_one(tmp_path) -> None:
    from compressor.errors import CompressorError

    assert len(NAMES) == 6
    assert [m.name for m in zoo(tmp_path, ["mtcnn-onet", "minilm-l6"])] == ["minilm-l6", "mtcnn-onet"]
    with pytest.raises(CompressorError, match="unknown zoo model 'resnet'"):
        zoo(tmp_path, ["resnet"])
    assert not list(tmp_path.iterdir())  # nothing trained for models not chosen


def test_photo_crops_are_seeded_real_pixels() -> None:
    a, b = photo_crops(4, 48, 32, seed=2), photo_crops(4, 48, 32, seed=2)
    assert a.shape == (4, 3, 48, 48) and a.dtype == np.uint8 and np.array_equal(a, b)
    assert a.std() > 10  # photo content, not a constant
    assert not np.array_equal(a, photo_crops(4, 48, 32, seed=3))


@pytest.mark.skipif(importlib.util.find_spec("facenet_pytorch") is None, reason="facenet-pytorch not installed")
def test_onet_loads_facenets_weights_without_importing_the_package() -> None:
    import sys

    import torch

    from benchmarks.zoo.nets import mtcnn_onet

    model = mtcnn_onet()
    assert "facenet_pytorch" not in sys.modules
    with torch.inference_mode():
        box, landmarks, prob = model(torch.zeros(2, 3, 48, 48))
    assert box.shape == (2, 4) and landmarks.shape == (2, 10) and prob.shape == (2, 2)
    assert torch.allclose(prob.sum(1), torch.ones(2))


def test_quality_and_speedup_summary() -> None:
    ref = [np.array([[1.0, 0.0], [0.0, 1.0]])]
    assert quality("agreement", [np.array([[1.0, 0.0], [1.0, 0.0]])], ref, None) == 0.5
    assert quality("accuracy", ref, ref, np.array([0, 0])) == 0.5
    assert quality("cosine", ref, ref, None) == pytest.approx(1.0)
    per_round = {"ort-default": [2.0, 2.2, 1.8], "ours": [1.0, 2.0, 1.0]}
    r = ratio(per_round, "ort-default", "ours")
    assert r == {"median": 1.8, "low": 1.1, "high": 2.0}

    def model(speedup_b32, high):
        s = {"median": speedup_b32, "low": speedup_b32 / 2, "high": high}
        v = {f"speedup_b{b}_vs_{p}": s for b in (1, 32) for p in ("ort-default", "nncf-default")}
        peer = {"quality": 0.9}
        return {"variants": {"ours-all-int8": dict(v, quality=0.95 if high > 1 else 0.85), "ours-default": v,
                             "ours-best": v, "ort-default": peer, "nncf-default": peer}}

    rows = summary_rows([model(1.2, 1.3), model(1.05, 1.1), model(0.8, 0.9)])
    assert rows[0][2] == "1 of 3" and rows[0][3] == 1  # one model gains 1.1x; one is slower in every round
    assert rows[0][4] == "2"  # quality at least the peer's on the two faster models
    assert rows[0][5] == f"{(1.2 * 1.05 * 0.8) ** (1 / 3):.2f}x"
