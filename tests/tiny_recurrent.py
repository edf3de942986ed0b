"""A tiny recurrent ONNX model built with onnx.helper: a scalar input, a state whose batch is axis 1,
a GRU, and an If whose branches hold their own weights (so inspect must read subgraphs).

    audio [B, 10, 8] * (sample_rate / 16000) -> GRU (bidirectional, 16 units, initial_h = state)
      -> new_state = Y_h [2, B, 16]
      -> scores = If(sample_rate > 0, then: relu(flat(Y_h) @ W1) @ W_then, else: ... @ W_else)  [B, 4]
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

FRAMES, FEATURES, HIDDEN, CLASSES = 10, 8, 16, 4
RATE = 16000.0


def _weights(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "W": rng.normal(0, 0.4, (2, 3 * HIDDEN, FEATURES)).astype(np.float32),
        "R": rng.normal(0, 0.3, (2, 3 * HIDDEN, HIDDEN)).astype(np.float32),
        "B": rng.normal(0, 0.1, (2, 6 * HIDDEN)).astype(np.float32),
        "W1": rng.normal(0, 0.3, (2 * HIDDEN, 24)).astype(np.float32),
        "W_then": rng.normal(0, 0.3, (24, CLASSES)).astype(np.float32),
        "W_else": rng.normal(0, 0.3, (24, CLASSES)).astype(np.float32),
    }


def build_recurrent_onnx(path: Path, batch: int | str = 1, frames: int | str = FRAMES, seed: int = 0) -> Path:
    """Write the model to ``path``; ``batch`` and ``frames`` may be symbolic ('' = unnamed)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = _weights(seed)

    def dim(d: int | str) -> int | str | None:
        return None if d == "" else d

    def branch(name: str, weight: str) -> onnx.GraphProto:
        node = helper.make_node("MatMul", ["hidden", f"{name}_w"], [f"{name}_scores"], name=f"{name}_matmul")
        out = helper.make_tensor_value_info(f"{name}_scores", TensorProto.FLOAT, None)
        return helper.make_graph([node], name, [], [out], initializer=[numpy_helper.from_array(w[weight], f"{name}_w")])

    nodes = [
        helper.make_node("Div", ["sample_rate", "rate"], ["scale"]),
        helper.make_node("Mul", ["audio", "scale"], ["scaled"]),
        helper.make_node("Transpose", ["scaled"], ["seq"], perm=[1, 0, 2]),
        helper.make_node("GRU", ["seq", "W", "R", "B", "", "state"], ["Y", "Y_h"], hidden_size=HIDDEN,
                         direction="bidirectional", name="gru"),
        helper.make_node("Identity", ["Y_h"], ["new_state"]),
        helper.make_node("Transpose", ["Y_h"], ["h_bt"], perm=[1, 0, 2]),
        helper.make_node("Reshape", ["h_bt", "flat_shape"], ["flat"]),
        helper.make_node("MatMul", ["flat", "W1"], ["pre"], name="dense"),
        helper.make_node("Relu", ["pre"], ["hidden"]),
        helper.make_node("Greater", ["sample_rate", "zero"], ["positive"]),
        helper.make_node("If", ["positive"], ["scores"], then_branch=branch("then", "W_then"),
                         else_branch=branch("else", "W_else"), name="head"),
    ]
    inits = [numpy_helper.from_array(w[k], k) for k in ("W", "R", "B", "W1")]
    inits += [numpy_helper.from_array(np.array(RATE, np.float32), "rate"),
              numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
              numpy_helper.from_array(np.array([-1, 2 * HIDDEN], np.int64), "flat_shape")]
    graph = helper.make_graph(
        nodes, "tiny_recurrent",
        [helper.make_tensor_value_info("audio", TensorProto.FLOAT, [dim(batch), dim(frames), FEATURES]),
         helper.make_tensor_value_info("state", TensorProto.FLOAT, [2, dim(batch), HIDDEN]),
         helper.make_tensor_value_info("sample_rate", TensorProto.FLOAT, [])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [dim(batch), CLASSES]),
         helper.make_tensor_value_info("new_state", TensorProto.FLOAT, [2, dim(batch), HIDDEN])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


def parameter_count() -> int:
    """Every weight element of the model, the If branches' included (the scalars too)."""
    return sum(a.size for a in _weights(0).values()) + 2  # + the rate and zero scalars (int64 shapes are not weights)


def write_recurrent_data(path: Path, n: int = 40, seed: int = 1) -> Path:
    """An .npz for the model: audio samples first, the state with its batch on axis 1 (as the model has it)."""
    rng = np.random.default_rng(seed)
    np.savez(path, **{"x.audio": rng.normal(0, 1, (n, FRAMES, FEATURES)).astype(np.float32),
                      "x.state": rng.normal(0, 0.5, (2, n, HIDDEN)).astype(np.float32)})
    return path
