"""ONNX facts: signatures name only the batch axis "batch"; inspect reads subgraphs and stays quiet."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from compressor.frameworks._onnx import onnx_signature, ort_signature
from compressor.frameworks._onnx_graph import _fixed_shapes, inspect_onnx
from tests.tiny_recurrent import build_recurrent_onnx, parameter_count


def test_only_the_batch_axis_is_called_batch(tmp_path: Path) -> None:
    path = build_recurrent_onnx(tmp_path / "m.onnx", batch="", frames="frames")  # unnamed batch, named frames
    sig = onnx_signature(path)
    shapes = {t.name: t.shape for t in (*sig.inputs, *sig.outputs)}
    assert shapes == {"audio": ("batch", "frames", 8), "state": (2, "dim_1", 16), "sample_rate": (),
                      "scores": ("batch", 4), "new_state": (2, "dim_1", 16)}
    declared = onnx_signature(path, batch_axes={"state": 1, "new_state": 1})
    assert [t.shape for t in declared.inputs][1] == (2, "batch", 16) and declared.outputs[1].shape == (2, "batch", 16)
    assert {t.name: t.shape for t in ort_signature(path).inputs}["state"] == (2, "dim_1", 16)
    named = onnx_signature(build_recurrent_onnx(tmp_path / "n.onnx", batch="B"))
    assert named.inputs[0].shape == ("batch", 10, 8) and named.inputs[1].shape == (2, "B", 16)


def test_inspect_counts_subgraph_weights_nodes_and_recurrent_macs(tmp_path: Path) -> None:
    info = inspect_onnx(build_recurrent_onnx(tmp_path / "m.onnx"))
    assert info["parameters"] == parameter_count()
    assert info["ops"]["MatMul"] == 3 and info["ops"]["GRU"] == 1 and {"then_matmul", "else_matmul"} <= set(info["nodes"])
    by_node = {f["node"]: f["macs"] for f in info["float_compute"]}
    assert by_node["gru"] == 10 * 1 * (2 * 48 * 8 + 2 * 48 * 16)  # steps x batch x (W + R), both directions
    assert by_node["then_matmul"] == 24 * 4 and by_node["dense"] == 32 * 24
    assert info["macs"] == sum(by_node.values())


def test_shape_probe_keeps_onnxruntime_errors_off_the_console(tmp_path: Path, capfd) -> None:
    """A graph that cannot run on zeros (a reshape to a shape read from an input) logs nothing."""
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("Reshape", ["x", "shape"], ["r"], allowzero=1), helper.make_node("MatMul", ["r", "W"], ["y"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 8]),
                     helper.make_tensor_value_info("shape", TensorProto.INT64, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])],
        initializer=[numpy_helper.from_array(np.ones((8, 3), np.float32), "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    shapes = _fixed_shapes(model, None)
    assert shapes["W"] == [8, 3]
    captured = capfd.readouterr()
    assert "onnxruntime" not in captured.err and "[E:" not in captured.err, captured.err
