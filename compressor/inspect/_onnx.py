"""Reading an ONNX graph: parameters, sparsity, op histogram, and which MACs run in int8."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

INT8_OPS = {"QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger", "DynamicQuantizeMatMul",
            "MatMulIntegerToFloat", "QGemm", "MatMulNBits", "QAttention", "DynamicQuantizeLSTM"}
MAC_OPS = {"Conv", "ConvTranspose", "MatMul", "Gemm"} | INT8_OPS


def _initializer_arrays(model: Any) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    return {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}


def _weight_size(node: Any, inits: dict[str, np.ndarray], producers: dict[str, Any]) -> int:
    """Elements of the node's weight (second input), looking through a DequantizeLinear."""
    if len(node.input) < 2:
        return 0
    name = node.input[1]
    if name in inits:
        return int(inits[name].size)
    prod = producers.get(name)
    if prod is not None and prod.op_type == "DequantizeLinear" and prod.input[0] in inits:
        return int(inits[prod.input[0]].size)
    return 0


def int8_coverage(model: Any) -> dict[str, Any]:
    """Share of weight-bearing compute nodes (by weight elements) that run in int8.

    A QDQ float node counts as int8 when its activation and weight both arrive through
    DequantizeLinear: ONNX Runtime fuses that pattern into an integer kernel.
    """
    inits = _initializer_arrays(model)
    producers = {o: n for n in model.graph.node for o in n.output}
    int8_w, total_w, float_nodes = 0, 0, []
    for node in model.graph.node:
        if node.op_type not in MAC_OPS:
            continue
        w = max(_weight_size(node, inits, producers), 1)
        total_w += w
        fed_by_dq = [producers.get(i) is not None and producers[i].op_type == "DequantizeLinear" for i in node.input[:2]]
        if node.op_type in INT8_OPS or (len(fed_by_dq) == 2 and all(fed_by_dq)):
            int8_w += w
        else:
            float_nodes.append(f"{node.name or '?'} ({node.op_type})")
    return {"int8_share": round(int8_w / total_w, 4) if total_w else 0.0, "float_compute_nodes": float_nodes}


def inspect_onnx(path: Path) -> dict[str, Any]:
    from compressor.passes.convert._torch import onnx_signature
    from compressor.passes.optimize._onnx import load_onnx

    model = load_onnx(path)
    inits = _initializer_arrays(model)
    params = sum(int(a.size) for a in inits.values() if a.dtype.kind == "f" or a.dtype in (np.int8, np.uint8))
    float_ws = [a for a in inits.values() if a.dtype.kind == "f" and a.ndim >= 2]
    zeros = sum(int((a == 0).sum()) for a in float_ws)
    total = sum(int(a.size) for a in float_ws)
    int8_ws = [a for a in inits.values() if a.dtype in (np.int8, np.uint8) and a.ndim >= 2]
    sig = onnx_signature(path)
    info: dict[str, Any] = {
        "opset": {o.domain or "ai.onnx": o.version for o in model.opset_import},
        "inputs": [{"name": t.name, "shape": list(t.shape), "dtype": t.dtype} for t in sig.inputs],
        "outputs": [{"name": t.name, "shape": list(t.shape), "dtype": t.dtype} for t in sig.outputs],
        "parameters": params,
        "float_weight_sparsity": round(zeros / total, 4) if total else 0.0,
        "int8_weight_tensors": len(int8_ws),
        "ops": dict(Counter(n.op_type for n in model.graph.node).most_common()),
        "nodes": [n.name for n in model.graph.node],
    }
    info.update(int8_coverage(model))
    return info
