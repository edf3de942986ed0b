"""Keras / SavedModel input and the TF-side conversions: TFLite (four modes), ONNX (tf2onnx), ORT format.

Structural checks read the written files (op and tensor types); numeric checks are the runner's
parity against the parent and the metric on the evaluation split.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from compressor.formats import Format
from tests.tiny_keras import keras_runner, saved_model, step, trained

pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    return keras_runner(tmp_path_factory.mktemp("k3"), trained("keras3"))


def test_keras3_input_records_generation_layout_and_signature(runner) -> None:
    ref = runner.reference
    assert ref.format == Format.KERAS and ref.meta == {"keras": "keras3"}
    assert ref.signature.layout == "NHWC"
    assert ref.signature.inputs[0].shape == ("batch", 8, 8, 1) and ref.signature.outputs[0].shape == ("batch", 10)
    assert runner.reference_metric > 0.8  # NCHW digits are fed transposed to NHWC


def test_tf_keras_h5_input_is_tf_keras(tmp_path: Path) -> None:
    r = keras_runner(tmp_path, trained("tf_keras", ".h5"))
    assert r.reference.meta == {"keras": "tf_keras"} and r.reference_metric > 0.8
    art, entry = step(r, "convert.tflite")
    assert entry["parity"]["max_abs_error"] <= 1e-4


@pytest.mark.parametrize("quantize,int8_io", [("none", None), ("fp16", None), ("dynamic", None), ("int8", None),
                                               ("int8", True)])
def test_convert_tflite_modes(runner, quantize: str, int8_io: bool | None) -> None:
    from compressor.frameworks._litert import summarize

    config = {"quantize": quantize, **({"int8_io": int8_io} if int8_io is not None else {})}
    art, entry = step(runner, "convert.tflite", config)
    info = summarize(Path(art.path))
    assert art.format == Format.TFLITE and art.signature.layout == "NHWC"
    assert art.signature.inputs[0].dtype == "float32"  # callers feed floats whatever the file takes
    assert entry["metric_drop"] <= 0.02
    if quantize == "none":
        assert entry["parity"]["max_abs_error"] <= 1e-4 and set(info["tensor_dtypes"]) == {"FLOAT32", "INT32"}
    elif quantize == "fp16":
        assert "FLOAT16" in info["tensor_dtypes"] and info["ops"].get("DEQUANTIZE", 0) >= 1
        assert entry["parity"]["max_abs_error"] < 1e-2
    elif quantize == "dynamic":
        # fc1's 128x32 kernel is over TFLite's 1024-element threshold: int8 weights, float compute
        assert info["int8_share"] == 0.0 and info["int8_weight_share"] > 0.5
    else:
        assert info["int8_share"] == 1.0 and info["int8_compute_ops"] == info["compute_ops"] == 3
        assert info["io_dtypes"] == (["INT8"] if int8_io else ["FLOAT32"])
        assert entry["report"]["int8_share"] == 1.0 and entry["parity"]["cosine"] > 0.99


def test_keras_to_onnx_then_ort(runner) -> None:
    import onnxruntime as ort

    onnx_art, entry = step(runner, "convert.onnx", {"opset": 17})
    assert entry["parity"]["max_abs_error"] <= 1e-4 and onnx_art.signature.layout == "NHWC"
    ort_art, entry = step(runner, "convert.ort", {}, parent=onnx_art)
    assert ort_art.format == Format.ORT and Path(ort_art.path).suffix == ".ort"
    assert entry["parity"]["max_abs_error"] <= 1e-5
    assert "ai.onnx:Conv" in entry["report"]["required_operators"]
    session = ort.InferenceSession(str(ort_art.path), providers=["CPUExecutionProvider"])
    out = session.run(None, {session.get_inputs()[0].name: np.zeros((3, 8, 8, 1), np.float32)})[0]
    assert out.shape == (3, 10)


def test_saved_model_input_and_conversions(tmp_path: Path) -> None:
    r = keras_runner(tmp_path, saved_model())
    ref = r.reference
    assert ref.format == Format.SAVED_MODEL and ref.signature.layout == "NHWC" and r.reference_metric > 0.8
    assert ref.signature.inputs[0].shape == ("batch", 8, 8, 1)
    _, entry = step(r, "convert.tflite", {"quantize": "int8"})
    assert entry["report"]["int8_share"] == 1.0 and entry["metric_drop"] <= 0.02
    _, entry = step(r, "convert.onnx", {"opset": 17})
    assert entry["parity"]["max_abs_error"] <= 1e-4


def test_tensorflow_runtime_runs_keras_and_saved_model(runner) -> None:
    from backends import get_runtime
    from compressor.frameworks.importing import import_file

    x = {"image": np.random.default_rng(0).random((5, 8, 8, 1), dtype=np.float32)}
    with get_runtime("tensorflow").open(runner.reference) as session:
        keras_out = session.run(x)[0]
    sm = import_file(saved_model(), runner.cache)
    with get_runtime("tensorflow").open(sm) as session:
        sm_out = session.run({sm.signature.input_names[0]: x["image"]})[0]
    assert keras_out.shape == (5, 10) and np.abs(keras_out - sm_out).max() < 1e-5
