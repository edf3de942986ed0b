"""Data sources, deterministic splits, feeding, and metrics."""
from __future__ import annotations

import numpy as np
import pytest

from compressor.artifact import BATCH, Signature, TensorSpec
from compressor.data import feeds_for, load_bundle, split_indices
from compressor.errors import DataError
from compressor.metrics import get_metric
from compressor.run.pipeline import DataSpec


def test_digits_source_shape_range_and_determinism() -> None:
    a = load_bundle(DataSpec(source="digits"))
    b = load_bundle(DataSpec(source="digits"))
    train, test = a.splits["train"], a.splits["test"]
    assert train.inputs["x"].shape[1:] == (1, 8, 8) and train.inputs["x"].dtype == np.float32
    assert 0.0 <= train.inputs["x"].min() and train.inputs["x"].max() <= 1.0
    assert len(train) + len(test) == 1797 and abs(len(test) / 1797 - 0.25) < 0.01
    assert a.fingerprint("evaluation") == b.fingerprint("evaluation")
    c = load_bundle(DataSpec(source="digits", seed=1))
    assert c.fingerprint("evaluation") != a.fingerprint("evaluation")


def test_splits_are_stratified_and_disjoint() -> None:
    labels = np.repeat(np.arange(4), 25)
    train, test = split_indices(100, labels, 0.2, seed=3)
    assert not set(train) & set(test) and len(train) + len(test) == 100
    assert np.bincount(labels[test]).tolist() == [5, 5, 5, 5]


def test_resize_and_mnist() -> None:
    bundle = load_bundle(DataSpec(source="digits", size=28))
    assert bundle.splits["test"].inputs["x"].shape[1:] == (1, 28, 28)
    mnist = load_bundle(DataSpec(source="mnist"))
    assert len(mnist.splits["train"]) + len(mnist.splits["test"]) == 5000
    assert mnist.splits["train"].inputs["x"].shape[1:] == (1, 28, 28)


def test_npz_source_with_named_inputs(tmp_path) -> None:
    path = tmp_path / "d.npz"
    np.savez(path, **{"x.ids": np.arange(40).reshape(20, 2), "x.mask": np.ones((20, 2)), "y": np.arange(20) % 2})
    bundle = load_bundle(DataSpec(npz=str(path)), resolve=lambda p: tmp_path / p)
    assert set(bundle.splits["train"].inputs) == {"ids", "mask"}
    np.savez(tmp_path / "bad.npz", z=np.zeros(3))
    with pytest.raises(DataError, match=r"no 'x' or 'x\.<input>'"):
        load_bundle(DataSpec(npz="bad.npz"), resolve=lambda p: tmp_path / p)


def test_factory_source_and_length_mismatch() -> None:
    spec = DataSpec(factory="tests.core.test_data_metrics:_factory")
    assert len(load_bundle(spec).splits["test"]) == 10
    with pytest.raises(DataError, match="different sample counts"):
        load_bundle(DataSpec(factory="tests.core.test_data_metrics:_bad_factory"))


def _factory() -> dict:
    return {"x": np.zeros((40, 3), np.float32), "y": np.arange(40) % 2}


def _bad_factory() -> dict:
    return {"x": np.zeros((40, 3), np.float32), "y": np.arange(39) % 2}


def test_empty_split_is_a_clear_error() -> None:
    bundle = load_bundle(DataSpec(factory="tests.core.test_data_metrics:_factory"))
    bundle.splits["train"] = bundle.splits["train"].take(0)
    with pytest.raises(DataError, match=r"calibration split 'train' is empty.*quantize"):
        bundle.split("calibration", needed_by="quantize")


def test_feeds_map_names_dtypes_and_layout() -> None:
    sig = Signature((TensorSpec("img", (BATCH, 8, 8, 1)),), layout="NHWC")
    feeds = feeds_for(sig, {"x": np.zeros((2, 1, 8, 8), np.float64)})
    assert feeds["img"].shape == (2, 8, 8, 1) and feeds["img"].dtype == np.float32
    with pytest.raises(DataError, match=r"expects shape \['batch', 4, 4\]"):
        feeds_for(Signature((TensorSpec("a", (BATCH, 4, 4)),)), {"x": np.zeros((2, 5, 5))})


def test_metrics() -> None:
    out = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    assert get_metric("accuracy").fn(out, np.array([1, 0, 0]), None) == pytest.approx(2 / 3)
    assert get_metric("cosine").fn(out, None, out) == pytest.approx(1.0)
    mse = get_metric("mse")
    assert mse.fn(out + 1, None, out) == pytest.approx(1.0)
    assert mse.drop(0.1, 0.3) == pytest.approx(0.2) and get_metric("accuracy").drop(0.9, 0.8) == pytest.approx(0.1)
    scores = np.tile(np.arange(10.0), (2, 1))  # class 9 ranks first, class 5 fifth, class 4 sixth
    assert get_metric("top5").fn(scores, np.array([5, 4]), None) == pytest.approx(0.5)
    with pytest.raises(DataError, match="needs labels"):
        get_metric("accuracy").fn(out, None, None)
