"""A tiny ONNX conv net built in code, and its dynamic-int8 twin: a pair whose output is slower in a
known way on ONNX Runtime's CPU (Conv becomes DynamicQuantizeLinear + ConvInteger)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from compressor.artifact import Artifact, Signature, TensorSpec, content_sha256
from compressor.formats import Format
from compressor.measure.profile import ProfileSettings

FAST_PROFILE = ProfileSettings(warmup_runs=2, runs=5, max_seconds=1.0)  # a short profile for tests
SAMPLES = {"input": np.random.default_rng(0).random((4, 3, 8, 8), dtype=np.float32)}


def conv_net(path: Path) -> Path:
    """input [batch, 3, 8, 8] -> Conv(16, 3x3) -> Relu -> Conv(16, 3x3) -> output."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.standard_normal((16, 3, 3, 3)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.standard_normal((16, 16, 3, 3)).astype(np.float32), "w2")
    nodes = [helper.make_node("Conv", ["input", "w1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2"], ["output"], name="conv2", pads=[1, 1, 1, 1])]
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 8, 8])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 16, 8, 8])
    graph = helper.make_graph(nodes, "tiny", [x], [y], [w1, w2])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def artifact(path: Path) -> Artifact:
    signature = Signature((TensorSpec("input", ("batch", 3, 8, 8)),), (TensorSpec("output", ("batch", 16, 8, 8)),))
    return Artifact(Format.ONNX, path, signature, content_sha256(path))


def conv_pair(folder: Path) -> tuple[Artifact, Artifact]:
    """The float conv net and its dynamic-int8 twin, written into ``folder``."""
    from onnxruntime.quantization import quantize_dynamic

    fp32 = conv_net(folder / "fp32.onnx")
    quantize_dynamic(str(fp32), str(folder / "int8.onnx"))
    return artifact(fp32), artifact(folder / "int8.onnx")
