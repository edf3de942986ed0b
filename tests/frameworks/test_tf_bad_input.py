"""Bad input on the edge path: each a one-line CompressorError (CLI exit 2) and nothing half-written."""
from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from compressor.errors import ConversionError, InputRefused, ModelLoadError
from compressor.frameworks.importing import import_file
from tests.tiny_keras import keras_pipeline, keras_runner, step, trained, write_yaml

pytest.importorskip("tensorflow")


def _cache(tmp_path: Path):  # noqa: ANN202
    from compressor.cache import Cache

    return Cache(tmp_path / "cache")


def _nothing_left(cache) -> bool:  # noqa: ANN001
    return not any((cache.root / "objects").iterdir()) and not any((cache.root / "tmp").iterdir())


@pytest.mark.parametrize("name,content", [
    ("model.tflite", b"TFL3" + bytes(range(256)) * 4),            # random bytes with a TFLite-ish head
    ("model.keras", b"PK\x03\x04 not really a zip"),
    ("model.h5", b"\x89HDF\r\n\x1a\n truncated"),
])
def test_corrupt_model_files_are_clear_errors(tmp_path: Path, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    cache = _cache(tmp_path)
    with pytest.raises(ModelLoadError, match="truncated|not a"):
        import_file(path, cache)
    assert _nothing_left(cache)


def test_truncated_tflite_exits_2_on_the_cli(tmp_path: Path) -> None:
    r = keras_runner(tmp_path, trained("keras3"))
    art, _ = step(r, "convert.tflite")
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(Path(art.path).read_bytes()[: art.size_bytes // 3])
    pipeline = write_yaml(tmp_path, keras_pipeline(cut, {"as-is": []}))
    proc = subprocess.run([sys.executable, "-m", "compressor.cli", "run", str(pipeline), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr[-500:]
    assert "cut.tflite" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "o" / "results.json").exists()


def test_saved_model_without_a_signature(tmp_path: Path) -> None:
    import tensorflow as tf

    module = tf.Module()
    module.v = tf.Variable(1.0)
    tf.saved_model.save(module, str(tmp_path / "sm"))
    with pytest.raises(ModelLoadError, match="no 'serving_default' signature.*model.export"):
        import_file(tmp_path / "sm", _cache(tmp_path))


def test_representative_data_of_the_wrong_shape(tmp_path: Path) -> None:
    from compressor.data import load_bundle
    from compressor.run.pipeline import DataSpec

    r = keras_runner(tmp_path, trained("keras3"))
    r = dataclasses.replace(r, data=load_bundle(DataSpec(source="digits", size=12)))  # calibration 12x12, model 8x8
    with pytest.raises(InputRefused, match=r"expects shape \[.batch., 8, 8, 1\].*12"):
        step(r, "convert.tflite", {"quantize": "int8"})
    assert _nothing_left_for_pass(r)


FITS_40 = {"split": "train", "limit": 30}  # 40 samples: 30 train; a written limit above that is refused


def test_representative_data_of_the_wrong_dtype(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.random((40, 1, 8, 8)).astype(np.float32) + 1j  # complex images: not calibration data
    np.savez(tmp_path / "c.npz", x=x.astype(np.complex64), y=np.arange(40) % 10)
    with pytest.warns(np.exceptions.ComplexWarning):  # the float model itself is evaluated on the real part
        r = keras_runner(tmp_path, trained("keras3"), source=None, npz=str(tmp_path / "c.npz"), calibration=FITS_40)
    with pytest.raises(InputRefused, match="complex64.*numeric"):
        step(r, "convert.tflite", {"quantize": "int8"})


def _nothing_left_for_pass(runner) -> bool:  # noqa: ANN001
    return not any((runner.cache.root / "tmp").iterdir())


def _svd_saved_model(path: Path) -> Path:
    import tensorflow as tf

    class Svd(tf.Module):
        def __init__(self) -> None:
            self.w = tf.Variable(tf.random.normal([32, 10], seed=0))

        @tf.function(input_signature=[tf.TensorSpec([None, 8, 8], tf.float32, name="x")])
        def __call__(self, x):  # noqa: ANN001, ANN204
            s = tf.linalg.svd(x, compute_uv=False)
            return {"y": tf.matmul(tf.concat([s, s, s, s], 1), self.w)}

    m = Svd()
    tf.saved_model.save(m, str(path), signatures=m.__call__)
    return path


@pytest.mark.parametrize("name,config,match", [
    ("convert.tflite", {}, r"saved_model -> tflite \(quantize: none\) failed: operator Svd is not a TFLite builtin"),
    ("convert.onnx", {"opset": 17}, r"saved_model -> onnx \(tf2onnx, opset 17\) failed: operator Svd has no ONNX"),
])
def test_unsupported_operator_names_op_hop_and_next_step(tmp_path: Path, name: str, config: dict, match: str) -> None:
    sm = _svd_saved_model(tmp_path / "svd")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.random((40, 8, 8), dtype=np.float32), y=np.arange(40) % 10)
    r = keras_runner(tmp_path, sm, source=None, npz=str(tmp_path / "d.npz"), calibration=FITS_40)
    with pytest.raises(ConversionError, match=match) as err:
        step(r, name, config)
    assert "\n" not in str(err.value) and ("convert.onnx" in str(err.value) or "TFLite" in str(err.value))
    assert _nothing_left_for_pass(r)
