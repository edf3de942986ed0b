"""Reading an ONNX graph: parameters, sparsity, op histogram, and which MACs run in int8."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

INT8_OPS = {"QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger", "DynamicQuantizeMatMul",
            "MatMulIntegerToFloat", "QGemm", "MatMulNBits", "QAttention", "DynamicQuantizeLSTM"}
MAC_OPS = {"Conv", "ConvTranspose", "MatMul", "Gemm"} | INT8_OPS


def graphs(model: Any) -> list[Any]:
    """The main graph and every subgraph under it (If branches, Loop and Scan bodies), depth first."""
    found, todo = [], [model.graph]
    while todo:
        graph = todo.pop(0)
        found.append(graph)
        for node in graph.node:
            for attr in node.attribute:
                todo += [attr.g] if attr.HasField("g") else []
                todo += list(attr.graphs)
    return found


def all_nodes(model: Any) -> list[Any]:
    """Every node of the model, subgraphs included (a Loop body's nodes are counted once)."""
    return [n for g in graphs(model) for n in g.node]


def _initializer_arrays(model: Any) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    return {i.name: numpy_helper.to_array(i) for g in graphs(model) for i in g.initializer}


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
    producers = {o: n for n in all_nodes(model) for o in n.output}
    int8_w, total_w, float_nodes = 0, 0, []
    for node in all_nodes(model):
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


# op type -> (activation input index, weight input index); K is the activation's last dim for
# matmul-like ops, the weight's fan-in (C/group * kernel) for conv-like ops
_MATMUL_LIKE = {"MatMul": (0, 1), "Gemm": (0, 1), "MatMulInteger": (0, 1), "QLinearMatMul": (0, 3),
                "QGemm": (0, 3), "DynamicQuantizeMatMul": (0, 1), "MatMulIntegerToFloat": (0, 1),
                "MatMulNBits": (0, 1), "FusedMatMul": (0, 1), "FusedGemm": (0, 1)}
_CONV_LIKE = {"Conv": (0, 1), "ConvInteger": (0, 1), "QLinearConv": (0, 3), "ConvTranspose": (0, 1), "FusedConv": (0, 1)}
RECURRENT_GATES = {"GRU": 3, "LSTM": 4, "RNN": 1}  # weight rows per hidden unit: W is [dirs, gates * H, input]
COMPUTE_OPS = MAC_OPS | set(_MATMUL_LIKE) | set(_CONV_LIKE) | set(RECURRENT_GATES)
SEQUENCE_DIM = 128  # value assumed for symbolic dims other than the batch when no shapes are given


def _fixed_shapes(model: Any, input_shapes: dict[str, list[int]] | None) -> dict[str, list[int]]:
    """Every tensor's static shape after onnx shape inference with the inputs' dims fixed.

    Named symbolic dims (batch, sequence) left in value_info, e.g. around com.microsoft ops that
    onnx cannot infer, are resolved with the values the inputs fixed them to.
    """
    import onnx
    from onnx import shape_inference

    m = onnx.ModelProto()
    m.CopyFrom(model)
    params: dict[str, int] = {}
    for value in m.graph.input:
        given = (input_shapes or {}).get(value.name)
        for i, dim in enumerate(value.type.tensor_type.shape.dim):
            if given is not None and i < len(given):
                size = int(given[i])
            elif not dim.HasField("dim_value"):
                size = 1 if i == 0 else SEQUENCE_DIM
            else:
                continue
            if dim.dim_param:
                params[dim.dim_param] = size
            dim.dim_value = size
    known = list(m.graph.value_info)
    del m.graph.value_info[:]
    try:
        m = shape_inference.infer_shapes(m, strict_mode=False, data_prop=True)
    except Exception:  # custom domains can stop inference; what was inferred is still used
        pass
    shapes: dict[str, list[int]] = {}
    inner = [v for g in graphs(m)[1:] for v in (*g.value_info, *g.output)]  # subgraph tensors, as inferred
    for value in [*known, *m.graph.input, *m.graph.value_info, *m.graph.output, *inner]:
        dims = [d.dim_value if d.HasField("dim_value") else params.get(d.dim_param) for d in value.type.tensor_type.shape.dim]
        if dims and all(d for d in dims):
            shapes[value.name] = dims
    for init in (i for g in graphs(m) for i in g.initializer):
        shapes[init.name] = list(init.dims)
    types = {v.name: v.type.tensor_type.elem_type for v in [*m.graph.input, *m.graph.value_info, *m.graph.output]}
    shapes.update(_run_shapes(model, params, m.graph.input, types))
    return shapes


def _run_shapes(model: Any, params: dict[str, int], inputs: Any, types: dict[str, int]) -> dict[str, list[int]]:
    """The real shapes of the compute nodes' operands, from one ONNX Runtime run on zeros.

    onnx's static inference loses dims through attention reshapes and cannot see through
    com.microsoft ops; one run with every operand exposed as an output is exact.
    """
    import onnx
    from onnx import helper

    inits = {i.name for i in model.graph.initializer}
    wanted = []
    for node in model.graph.node:
        if node.op_type in COMPUTE_OPS:
            wanted += [t for t in (*node.input[:4], node.output[0]) if t and t not in inits and types.get(t)]
    outputs = {o.name for o in model.graph.output}
    wanted = [t for t in dict.fromkeys(wanted) if t not in {i.name for i in inputs}]
    try:
        import onnxruntime as ort

        m = onnx.ModelProto()
        m.CopyFrom(model)
        m.graph.output.extend(helper.make_tensor_value_info(t, types[t], None) for t in wanted if t not in outputs)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        # a graph that cannot run on zeros is expected here: ORT's own error log would only confuse
        opts.intra_op_num_threads, opts.log_severity_level = 1, 4
        session = ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        feeds = {i.name: np.zeros([d.dim_value for d in i.type.tensor_type.shape.dim],
                                  helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type))
                 for i in inputs if i.name not in inits}
        run_options = ort.RunOptions()
        run_options.log_severity_level = 4
        values = session.run(wanted, feeds, run_options)
    except Exception:  # no runtime, or a graph it cannot run: keep the inferred shapes
        return {}
    found = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in inputs}
    found.update({t: list(v.shape) for t, v in zip(wanted, values)})
    return found


def _recurrent_macs(node: Any, shapes: dict[str, list[int]]) -> int | None:
    """GRU / LSTM / RNN: every step multiplies the input by W and the hidden state by R, per direction."""
    x, w, r = (shapes.get(node.input[i]) if len(node.input) > i else None for i in range(3))
    if not (x and w and r):
        return None
    layout = next((a.i for a in node.attribute if a.name == "layout"), 0)
    steps, batch = (x[0], x[1]) if layout == 0 else (x[1], x[0])
    return int(steps) * int(batch) * int(np.prod(w)) + int(steps) * int(batch) * int(np.prod(r))


def node_macs(node: Any, shapes: dict[str, list[int]]) -> int | None:
    """Multiply-accumulates of one Conv / Gemm / MatMul-like or recurrent node (None when shapes are unknown)."""
    attrs = {a.name: a for a in node.attribute}
    if node.op_type in RECURRENT_GATES:
        return _recurrent_macs(node, shapes)
    if node.op_type in _CONV_LIKE:
        _, w = _CONV_LIKE[node.op_type]
        out, weight = shapes.get(node.output[0]), shapes.get(node.input[w]) if len(node.input) > w else None
        if node.op_type == "ConvTranspose":
            src = shapes.get(node.input[0])
            return int(np.prod(src)) * int(np.prod(weight[1:])) if src and weight else None
        return int(np.prod(out)) * int(np.prod(weight[1:])) if out and weight else None
    if node.op_type in _MATMUL_LIKE:
        a_idx, b_idx = _MATMUL_LIKE[node.op_type]
        a = shapes.get(node.input[a_idx])
        if a is None:
            return None
        trans_a = "transA" in attrs and attrs["transA"].i
        k = a[0] if trans_a and len(a) == 2 else a[-1]
        rows = int(np.prod(a)) // k
        if node.op_type == "MatMulNBits":
            n = attrs["N"].i
        else:
            b = shapes.get(node.input[b_idx])
            if b is None:
                return None
            n = b[0] if ("transB" in attrs and attrs["transB"].i) else b[-1]
            if len(b) > 2:  # batched matmul (attention): one product per leading index
                rows = int(np.prod(a[:-1]))
        return rows * k * int(n)
    return None


def _runs_int8(node: Any, producers: dict[str, Any]) -> bool:
    """Integer kernel: an int8 op, or a float op fed by DequantizeLinear on both operands (ORT fuses it)."""
    if node.op_type == "MatMulNBits":  # int8 dot products only with accuracy_level 4
        return any(a.name == "accuracy_level" and a.i == 4 for a in node.attribute)
    if node.op_type in INT8_OPS:
        return True
    fed = [producers.get(i) is not None and producers[i].op_type == "DequantizeLinear" for i in node.input[:2]]
    return len(fed) == 2 and all(fed)


def mac_coverage(model: Any, input_shapes: dict[str, list[int]] | None = None) -> dict[str, Any]:
    """Share of multiply-accumulates that run in int8, and the float compute nodes that remain.

    Shapes come from onnx shape inference with the model inputs fixed to ``input_shapes`` (one
    sample: batch 1; symbolic dims otherwise taken as batch 1 and 128 for the rest).
    """
    shapes = _fixed_shapes(model, input_shapes)
    nodes = all_nodes(model)
    producers = {o: n for n in nodes for o in n.output}
    int8_macs = total = 0
    float_nodes, unknown = [], []
    for node in nodes:
        if node.op_type not in COMPUTE_OPS:
            continue
        macs = node_macs(node, shapes)
        if macs is None:
            unknown.append(node.name or node.op_type)
            continue
        total += macs
        if _runs_int8(node, producers):
            int8_macs += macs
        else:
            float_nodes.append({"node": node.name or "?", "op_type": node.op_type, "macs": macs})
    return {
        "int8_mac_share": round(int8_macs / total, 4) if total else 0.0,
        "macs": total,
        "float_compute": sorted(float_nodes, key=lambda f: -f["macs"]),
        "float_op_types": dict(Counter(n.op_type for n in nodes if n.op_type not in
                                       {"QuantizeLinear", "DequantizeLinear"} and not _is_int8_node(n, producers))),
        "nodes_without_shapes": unknown,
    }


def _is_int8_node(node: Any, producers: dict[str, Any]) -> bool:
    """An int8 op, or a float op all of whose computed inputs come through DequantizeLinear."""
    if node.op_type in COMPUTE_OPS:
        return _runs_int8(node, producers)
    computed = [producers[i] for i in node.input if i in producers]
    return bool(computed) and all(p.op_type == "DequantizeLinear" for p in computed)


def coverage(path: Path, input_shapes: dict[str, list[int]] | None = None) -> dict[str, Any]:
    """What a run step records for every quantized ONNX artifact: int8 share by weights and MACs."""
    from compressor.frameworks._onnx import load_onnx

    model = load_onnx(path, load_weights=False)
    info = int8_coverage(model)
    info.update(mac_coverage(model, input_shapes))
    return info


def inspect_onnx(path: Path) -> dict[str, Any]:
    from compressor.frameworks._onnx import load_onnx, onnx_signature

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
        "ops": dict(Counter(n.op_type for n in all_nodes(model)).most_common()),
        "nodes": [n.name for n in all_nodes(model)],
    }
    info.update(int8_coverage(model))
    info.update(mac_coverage(model))
    return info
