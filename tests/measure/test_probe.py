"""measure/probe.py: where a pass measures (the pipeline's first target, or ORT CPU with the reason), a profile
through the runtime's one trace reader, and two models timed side by side."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from compressor.formats import Format
from compressor.measure.probe import ProbeTarget, probe_target, profile_nodes, side_by_side


def matmul_model(path: Path, width: int) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((width, width)).astype(np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm"),
                               helper.make_node("Relu", ["y"], ["z"], name="relu")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", width])],
                              [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", width])], [w])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def cuda_here() -> bool:
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


def test_the_target_decides_where_and_says_why_when_it_cannot() -> None:
    assert probe_target("onnxruntime:cpu", Format.ONNX) == ProbeTarget("onnxruntime", "cpu", "onnxruntime:cpu")
    litert = probe_target("litert:cpu", Format.ONNX)  # converted after the pass: measured on ORT CPU
    assert litert.name == "onnxruntime:cpu" and "does not run onnx" in litert.note
    assert litert.to_dict() == {"measured_on": "onnxruntime:cpu", "target": "litert:cpu", "note": litert.note}
    cuda = probe_target("onnxruntime:cuda", Format.ONNX)
    if cuda_here():
        assert cuda.name == "onnxruntime:cuda" and cuda.note is None
    else:
        assert cuda.name == "onnxruntime:cpu" and "not usable on this machine" in cuda.note


def test_profile_and_side_by_side_on_cpu(tmp_path: Path) -> None:
    small = matmul_model(tmp_path / "s.onnx", 16)
    where = probe_target("onnxruntime:cpu", Format.ONNX)
    feed = {"x": np.ones((4, 16), np.float32)}
    nodes = profile_nodes(small, Format.ONNX, where, feed)
    assert {n["node"] for n in nodes} >= {"mm"} and all(n["ms"] >= 0 for n in nodes)
    assert next(n for n in nodes if n["node"] == "mm")["kind"] in ("float_compute", "other")
    ms = side_by_side({"s": small, "b": small}, Format.ONNX, where, {4: feed}, rounds=1)
    assert set(ms) == {"s", "b"} and all(v > 0 for v in ms.values())


@pytest.mark.skipif(not cuda_here(), reason="no CUDA execution provider here: the CUDA profile is not exercised")
def test_profile_on_cuda(tmp_path: Path) -> None:
    where = probe_target("onnxruntime:cuda", Format.ONNX)
    nodes = profile_nodes(matmul_model(tmp_path / "m.onnx", 64), Format.ONNX, where, {"x": np.ones((4, 64), np.float32)})
    assert where.device == "cuda" and any(n["node"] == "mm" for n in nodes)
