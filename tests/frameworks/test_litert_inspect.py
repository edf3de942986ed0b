"""Reading a .tflite file: float work left between DEQUANTIZE and QUANTIZE is not hidden."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")


def _int8_with_a_float_op(path: Path) -> Path:
    """conv -> sin -> matmul, int8 where TFLite has kernels; SIN has none, so it runs in float."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    w1 = tf.constant(rng.normal(size=(3, 3, 1, 4)).astype(np.float32))
    w2 = tf.constant(rng.normal(size=(144, 10)).astype(np.float32))

    class Net(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, 8, 8, 1], tf.float32)])
        def f(self, x):  # noqa: ANN001, ANN202
            y = tf.math.sin(tf.nn.conv2d(x, w1, 1, "VALID"))
            return tf.matmul(tf.reshape(y, [1, 144]), w2)

    net = Net()

    def representative():  # noqa: ANN202
        for _ in range(8):
            yield [rng.random((1, 8, 8, 1), dtype=np.float32)]

    converter = tf.lite.TFLiteConverter.from_concrete_functions([net.f.get_concrete_function()], net)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    path.write_bytes(converter.convert())
    return path


def test_float_islands_are_listed_and_lower_the_int8_share(tmp_path: Path) -> None:
    from compressor.frameworks.inspecting import inspect_model

    info = inspect_model(_int8_with_a_float_op(tmp_path / "m.tflite"))
    assert info["ops"]["DEQUANTIZE"] >= 1 and info["ops"]["SIN"] == 1
    assert [s.split(":")[1] for s in info["float_islands"]] == ["SIN"]
    assert info["float_compute_ops"] == [] and 0.9 < info["int8_share"] < 1.0
