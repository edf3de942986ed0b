"""The litert runtime (batch resizing, fixed-batch chunking, int8 I/O, XNNPACK switch), PyTorch -> TFLite
with litert-torch (fp32 parity, int8 kernels read from the file), and ``compressor inspect`` on .tflite."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from compressor.errors import InputRefused
from compressor.formats import Format
from tests.pass_context import make_context as make_runner
from tests.tiny_keras import keras_runner, step, trained

pytest.importorskip("ai_edge_litert")


@pytest.fixture(scope="module")
def keras_tflite(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    r = keras_runner(tmp_path_factory.mktemp("lk"), trained("keras3"))
    fp32, _ = step(r, "convert.tflite")
    int8_io, _ = step(r, "convert.tflite", {"quantize": "int8", "int8_io": True})
    return r, fp32, int8_io


@pytest.fixture(scope="module")
def torch_runner(tmp_path_factory: pytest.TempPathFactory, tiny_weights: Path):  # noqa: ANN201
    return make_runner(tmp_path_factory.mktemp("lt"), tiny_weights)


def _x(n: int, layout: str = "NHWC") -> np.ndarray:
    x = np.random.default_rng(n).random((n, 1, 8, 8), dtype=np.float32)
    return x.transpose(0, 2, 3, 1).copy() if layout == "NHWC" else x


def test_batch_resize_gives_the_same_rows(keras_tflite) -> None:
    from backends import get_runtime

    _, fp32, _ = keras_tflite
    x = _x(7)
    with get_runtime("litert").open(fp32, threads=1) as session:
        assert session.static_batch is None
        name = session.input_names[0]
        whole = session.run({name: x})[0]
        parts = np.concatenate([session.run({name: x[:1]})[0], session.run({name: x[1:4]})[0],
                                session.run({name: x[4:]})[0]])
    assert whole.shape == (7, 10) and np.abs(whole - parts).max() < 1e-5


def test_xnnpack_switch_and_threads_agree(keras_tflite) -> None:
    from backends import get_runtime

    _, fp32, _ = keras_tflite
    x = _x(4)
    rt = get_runtime("litert")
    with rt.open(fp32, threads=2) as a, rt.open(fp32, threads=1, xnnpack=False) as b:
        name = a.input_names[0]
        assert np.abs(a.run({name: x})[0] - b.run({name: x})[0]).max() < 1e-4


def test_int8_io_session_quantizes_floats(keras_tflite) -> None:
    from backends import get_runtime
    from compressor.frameworks._litert import summarize

    r, fp32, int8_io = keras_tflite
    assert summarize(Path(int8_io.path))["io_dtypes"] == ["INT8"]
    # real digits, not noise: on noise the logits nearly tie and argmax agreement means little
    x = r.data.split("evaluation").inputs["x"][:64].transpose(0, 2, 3, 1).copy()
    rt = get_runtime("litert")
    with rt.open(fp32) as a, rt.open(int8_io) as b:
        ya, yb = a.run({a.input_names[0]: x})[0], b.run({b.input_names[0]: x})[0]
    assert yb.dtype == np.float32 and np.mean(ya.argmax(1) == yb.argmax(1)) >= 0.9
    # int8 rounding: a single logit of 640 may be off by more (the calibration is data-dependent), the bulk not
    assert np.percentile(np.abs(ya - yb), 99) < 0.1 * np.abs(ya).max()


def test_torch_to_tflite_fp32_parity_and_fixed_batch(torch_runner) -> None:
    from backends import get_runtime

    art, entry = step(torch_runner, "convert.tflite")
    assert art.format == Format.TFLITE and art.signature.layout == "NCHW" and art.meta["static_batch"] == 1
    assert entry["parity"]["max_abs_error"] <= 1e-4 and entry["metric_drop"] <= 0.0
    with get_runtime("litert").open(art) as session:  # litert-torch's fixed batch 1: run in chunks
        assert session.static_batch == 1
        out = session.run({session.input_names[0]: _x(5, "NCHW")})[0]
    assert out.shape == (5, 10)


def test_torch_to_tflite_int8_has_int8_kernels(torch_runner) -> None:
    from compressor.frameworks._litert import read_ops

    art, entry = step(torch_runner, "convert.tflite", {"quantize": "int8", "calibration_samples": 64})
    report = entry["report"]
    assert report["int8_share"] == 1.0 and report["int8_compute_ops"] == report["compute_ops"] >= 2
    assert report["io_dtypes"] == ["INT8"] and entry["metric_drop"] <= 0.02
    ops, _, _ = read_ops(Path(art.path))  # from the file itself: every conv / fc runs int8 in and out
    macs = [o for o in ops if o["op"] in {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"}]
    assert macs and all(o["inputs"][0] == "INT8" and o["outputs"][0] == "INT8" for o in macs)


def test_torch_tflite_fp16_is_refused(torch_runner) -> None:

    with pytest.raises(InputRefused, match="fp16 is not available for PyTorch"):
        step(torch_runner, "convert.tflite", {"quantize": "fp16"})


def test_inspect_tflite(keras_tflite) -> None:
    from compressor.frameworks.inspecting import inspect_model

    _, _, int8_io = keras_tflite
    info = inspect_model(Path(int8_io.path))
    assert info["format"] == "tflite" and info["size_bytes"] == int8_io.size_bytes
    assert info["int8_share"] == 1.0 and info["tensor_dtypes"]["INT8"] > 0 and info["ops"]["CONV_2D"] == 1
    assert info["inputs"][0]["shape"] == ["batch", 8, 8, 1]
