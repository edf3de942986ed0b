"""Data that cannot be right is refused before any work; constants and batch axes are fed as declared."""
from __future__ import annotations

import numpy as np
import pytest

from compressor.artifact import BATCH, Signature, TensorSpec
from compressor.data import Feeding, Split, feeds_for, load_bundle
from compressor.data_checks import check_feeding_names, check_label_range, load_constants
from compressor.errors import ConfigError, DataError
from compressor.metrics import get_metric, worst
from compressor.run.pipeline import DataSpec


def _npz(tmp_path, name: str = "d.npz", **arrays):
    np.savez(tmp_path / name, **arrays)
    return tmp_path / name


def _load(tmp_path, arrays: dict, **spec):
    _npz(tmp_path, **arrays)
    return load_bundle(DataSpec(npz="d.npz", **spec), resolve=lambda p: tmp_path / p)


def test_nan_or_inf_inputs_are_refused(tmp_path) -> None:
    x = np.ones((20, 3), np.float32)
    x[7, 1] = np.nan
    with pytest.raises(DataError, match=r"input 'x' holds 1 NaN/inf value\(s\) \(first at index \[7, 1\]\)"):
        _load(tmp_path, {"x": x})
    x[7, 1] = np.inf
    with pytest.raises(DataError, match="NaN/inf"):
        _load(tmp_path, {"x": x, "y": np.arange(20) % 2})


def test_float_labels_are_refused_with_the_fix(tmp_path) -> None:
    x = np.ones((20, 3), np.float32)
    with pytest.raises(DataError, match=r"stored as float64 \(integer-valued\); store them as integers"):
        _load(tmp_path, {"x": x, "y": (np.arange(20) % 2).astype(np.float64)})
    with pytest.raises(DataError, match="not class ids"):
        _load(tmp_path, {"x": x, "y": np.linspace(0, 1, 20)})
    with pytest.raises(DataError, match="label -1 is negative"):
        _load(tmp_path, {"x": x, "y": np.arange(20) - 1})
    # a custom metric may read any labels: the class-id checks are off then
    path = _npz(tmp_path, "f.npz", x=x, y=np.linspace(0, 1, 20))
    assert load_bundle(DataSpec(npz="f.npz"), resolve=lambda p: path, class_labels=False).splits["test"].labels.dtype.kind == "f"


def test_label_range_against_the_model_classes() -> None:
    check_label_range(np.array([0, 2, 9]), 10, "logits")
    with pytest.raises(DataError, match=r"label 10 is outside the model's 10 classes \(output 'logits'"):
        check_label_range(np.array([0, 10]), 10, "logits")


def test_a_written_limit_larger_than_the_data_is_refused(tmp_path) -> None:
    arrays = {"x": np.ones((40, 3), np.float32)}
    with pytest.raises(DataError, match=r"data.calibration.limit is 100 but the 'train' split has only 30 samples"):
        _load(tmp_path, arrays, calibration={"split": "train", "limit": 100})
    assert len(_load(tmp_path, arrays).split("calibration")) == 30  # the default limit (256) is only a cap
    assert len(_load(tmp_path, arrays, calibration={"split": "train", "limit": 30}).split("calibration")) == 30


def test_builtin_samples_calibration_limits_fit() -> None:
    assert len(load_bundle(DataSpec(source="digits", calibration={"split": "train", "limit": 256})).split("calibration")) == 256


def test_constants_number_list_and_npz(tmp_path) -> None:
    np.savez(tmp_path / "c.npz", table=np.arange(6, dtype=np.float32).reshape(2, 3))
    got = load_constants({"rate": 16000, "gains": [[1, 2], [3, 4]], "table": {"npz": "c.npz", "key": "table"}},
                         resolve=lambda p: tmp_path / p)
    assert got["rate"].shape == () and got["gains"].shape == (2, 2) and got["table"][1, 2] == 5
    with pytest.raises(DataError, match=r"has no array 'nope' \(it has \['table'\]\)"):
        load_constants({"t": {"npz": "c.npz", "key": "nope"}}, resolve=lambda p: tmp_path / p)
    with pytest.raises(ConfigError, match="not a number or a rectangular nested list"):
        load_constants({"bad": [[1, 2], [3]]})
    with pytest.raises(DataError, match="NaN/inf"):
        load_constants({"bad": float("nan")})


def test_batch_axis_moves_samples_and_constants_are_fed_unbatched(tmp_path) -> None:
    state = np.random.default_rng(0).normal(size=(2, 20, 4)).astype(np.float32)  # the batch on axis 1
    bundle = _load(tmp_path, {"x.audio": np.ones((20, 5), np.float32), "x.state": state},
                   constants={"rate": 8000}, batch_axis={"state": 1})
    split = bundle.split("evaluation")
    assert split.inputs["state"].shape == (5, 2, 4)  # samples first inside a split
    sig = Signature((TensorSpec("audio", (BATCH, 5)), TensorSpec("state", (2, BATCH, 4)), TensorSpec("rate", ())))
    feeds = feeds_for(sig, split.take(3))
    assert feeds["state"].shape == (2, 3, 4) and feeds["audio"].shape == (3, 5)
    assert feeds["rate"].shape == () and feeds["rate"].dtype == np.float32 and feeds["rate"] == 8000
    np.testing.assert_array_equal(feeds["state"][:, 0], np.moveaxis(split.inputs["state"], 0, 1)[:, 0])
    # the constants and axes enter the split's fingerprint (and so the cache keys)
    other = _load(tmp_path, {"x.audio": np.ones((20, 5), np.float32), "x.state": state},
                  constants={"rate": 16000}, batch_axis={"state": 1})
    assert other.fingerprint("evaluation") != bundle.fingerprint("evaluation")


def test_feeding_refuses_what_cannot_fit() -> None:
    sig = Signature((TensorSpec("x", (1, 3)), TensorSpec("n", ())), (TensorSpec("y", (1, 2)),))
    split = Split({"x": np.ones((4, 3), np.float32)}, None, Feeding({"n": np.array(2.5)}))
    sig_int = Signature((TensorSpec("x", (BATCH, 3)), TensorSpec("n", (), "int64")))
    with pytest.raises(DataError, match=r"data.constants.n = \[2.5\] changes when cast to the input's int64"):
        feeds_for(sig_int, split)
    with pytest.raises(DataError, match=r"fixed batch of 1 on axis 0 but 4 samples.*batch_size"):
        feeds_for(sig, split)
    assert feeds_for(sig, split.take(1))["x"].shape == (1, 3)
    with pytest.raises(DataError, match=r"needs inputs \['n'\].*data.constants"):
        feeds_for(sig, Split({"x": np.ones((1, 3))}))
    with pytest.raises(ConfigError, match="data.constants names 'm', which is not an input"):
        check_feeding_names(sig, Feeding({"m": np.array(1)}), ["x"])
    with pytest.raises(ConfigError, match="data.batch_axis names 'z', which is neither an input nor an output"):
        check_feeding_names(sig, Feeding({}, {"z": 1}), ["x"])
    with pytest.raises(ConfigError, match=r"data.batch_axis.y = 2 but 'y' has 2 axes"):
        check_feeding_names(sig, Feeding({}, {"y": 2}), ["x"])
    check_feeding_names(sig, Feeding({"n": np.array(1)}, {"y": 1}), ["x"])


def test_worst_of_several_outputs() -> None:
    assert worst(get_metric("cosine"), {"a": 0.99, "b": 0.5}) == 0.5
    assert worst(get_metric("mse"), {"a": 0.1, "b": 0.3}) == 0.3
