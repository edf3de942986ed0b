"""Embedding tables (a Gather on a constant float matrix) to int4 blocks: ONNX Runtime's GatherBlockQuantized.

The MatMulNBits quantizers leave the token embedding in float32; in a small language model that
table is a large share of the file (a 2,048 x 256 embedding is 15% of a 3.4 M-parameter model). ORT's
default weight-only quantizer turns such a Gather into ``com.microsoft.GatherBlockQuantized`` (4 bits,
blocks along the embedding width, round to nearest). The result is checked here before it is kept:
an ORT session runs the new node over every row of the table, and the rows must match the float
table within one quantization step of their block. A runtime that cannot run the node (or that
does not reproduce the table) leaves the embedding in float and says why.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np


def embedding_gathers(model: Any, block_size: int) -> tuple[list[Any], dict[str, str]]:
    """The Gathers that read a whole float matrix held by the model alone, and why the others were left."""
    import onnx

    inits = {i.name: i for i in model.graph.initializer}
    uses: dict[str, int] = {}
    for node in model.graph.node:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    chosen, skipped = [], {}
    for node in model.graph.node:
        if node.op_type != "Gather" or node.input[0] not in inits:
            continue
        table = inits[node.input[0]]
        axis = next((onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == "axis"), 0)
        if table.data_type not in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16) or len(table.dims) != 2:
            continue  # integer constants (shapes, positions) are not embeddings
        if axis != 0 or uses.get(node.input[0], 0) != 1:
            skipped[node.name] = "the table is shared with another node or gathered along columns"
        elif table.dims[1] % block_size:
            skipped[node.name] = f"its width {table.dims[1]} is not a multiple of block_size {block_size}"
        else:
            chosen.append(node)
    return chosen, skipped


def _dequantized_rows(nodes: list[Any], model: Any, opset: int) -> list[np.ndarray]:
    """Every row of each quantized table, read back through ORT's GatherBlockQuantized kernel."""
    import onnx
    import onnxruntime as ort

    inits = {i.name: i for i in model.graph.initializer}
    tables = []
    for node in nodes:
        used = [inits[n] for n in node.input if n in inits]
        rows = int(used[0].dims[0])
        q = onnx.helper.make_node(node.op_type, [node.input[0], "ids", *node.input[2:]], ["rows"], domain=node.domain,
                                  **{a.name: onnx.helper.get_attribute_value(a) for a in node.attribute})
        graph = onnx.helper.make_graph(
            [q], "gather_check", [onnx.helper.make_tensor_value_info("ids", onnx.TensorProto.INT64, [rows])],
            [onnx.helper.make_tensor_value_info("rows", onnx.TensorProto.FLOAT, None)], initializer=used)
        check = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset),
                                                             onnx.helper.make_opsetid("com.microsoft", 1)])
        check.ir_version = model.ir_version
        session = ort.InferenceSession(check.SerializeToString(), providers=["CPUExecutionProvider"])
        tables.append(session.run(None, {"ids": np.arange(rows, dtype=np.int64)})[0])
    return tables


def quantize_embeddings(path: Path, block_size: int, symmetric: bool) -> dict[str, Any]:
    """Quantize the embedding Gathers of the ONNX file at ``path`` in place (the caller's own output file).

    Returns the report: how many tables were quantized, their largest error relative to the
    allowed step, and the reason when the embedding stays float (the file is then unchanged).
    """
    import onnx
    from onnxruntime.quantization import QuantFormat
    from onnxruntime.quantization import matmul_nbits_quantizer as mnq

    from compressor.cache import atomic_write_bytes
    from compressor.errors import first_line

    model = onnx.load(str(path))
    nodes, skipped = embedding_gathers(model, block_size)
    if not nodes:
        return {"embedding": "float", "embedding_reason": "; ".join(f"{k}: {v}" for k, v in skipped.items())
                or "the model has no Gather on a constant float matrix"}
    tables = {n.name: onnx.numpy_helper.to_array(next(i for i in model.graph.initializer if i.name == n.input[0]))
              for n in nodes}
    others = [n.name for n in model.graph.node if n.op_type == "Gather" and n.name not in tables]
    algo = mnq.DefaultWeightOnlyQuantConfig(block_size=block_size, is_symmetric=symmetric, bits=4,
                                            quant_format=QuantFormat.QOperator, op_types_to_quantize=("Gather",),
                                            quant_axes=(("Gather", 1),))
    chatty = logging.getLogger(mnq.__name__)  # one INFO line per node of the graph
    level = chatty.level
    try:
        chatty.setLevel(logging.WARNING)
        quantizer = mnq.MatMulNBitsQuantizer(model, algo_config=algo, nodes_to_exclude=others)
        with np.errstate(divide="ignore", invalid="ignore"):  # all-zero blocks: ORT's np.where handles them
            quantizer.process()
        out = quantizer.model.model
        new = [n for n in out.graph.node if n.op_type == "GatherBlockQuantized"]
        opset = next(o.version for o in out.opset_import if o.domain in ("", "ai.onnx"))
        read_back = _dequantized_rows(new, out, opset)
    except Exception as exc:  # ORT raises RuntimeError / ValueError / its own Fail types
        return {"embedding": "float", "embedding_reason": f"GatherBlockQuantized failed: {first_line(exc, 200)}"}
    finally:
        chatty.setLevel(level)
    worst = 0.0
    for node, rows in zip(new, read_back):
        ref = tables[node.name.removesuffix("_Q4")].astype(np.float32)
        blocks = ref.reshape(ref.shape[0], -1, block_size)
        if symmetric:  # ORT's grid: -8..7 steps of |max| / 8
            step = np.abs(blocks).max(-1) / 8.0
        else:  # 0..15 steps spanning [min(min, 0), max(max, 0)], the zero point rounded to the grid
            step = (np.maximum(blocks.max(-1), 0) - np.minimum(blocks.min(-1), 0)) / 15.0
        worst = max(worst, float((np.abs(rows - ref) / (np.repeat(step, block_size, axis=1) + 1e-7)).max()))
    if worst > 1.001:  # a kernel that does not give back the table it was given
        return {"embedding": "float", "embedding_reason": f"GatherBlockQuantized rows differ from the table by "
                                                          f"{worst:.2f} quantization steps (at most 1 expected)"}
    atomic_write_bytes(path, out.SerializeToString())
    return {"embedding": "int4", "embedding_tables": len(new), "embedding_error_steps": round(worst, 3)}
