"""LiteRT / TFLite facts: open an interpreter, tensor (de)quantization, signatures, importing a
.tflite file, and reading the flatbuffer itself (op histogram, tensor dtypes, which compute runs in
int8). Ops are read from the file, not from an Interpreter, whose op list also holds XNNPACK
delegate nodes."""
from __future__ import annotations

import math
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from compressor.artifact import BATCH, Signature, TensorSpec
from compressor.errors import ModelLoadError, first_line

MAC_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "BATCH_MATMUL", "CONV_3D",
           "CONV_3D_TRANSPOSE"}
INTEGER_TYPES = {"INT8", "UINT8", "INT16", "INT4"}


def _names(enum: Any) -> dict[int, str]:
    return {v: k for k, v in vars(enum).items() if not k.startswith("_") and isinstance(v, int)}


def read_ops(path: Path) -> tuple[list[dict[str, Any]], Any, dict[int, str]]:
    """Every op of the main subgraph (name, input / output tensor types, weight elements), the graph, type names."""
    from ai_edge_litert import schema_py_generated as fb
    from ai_edge_litert.tools import flatbuffer_utils

    try:
        model = flatbuffer_utils.read_model(str(path))
        graph = model.subgraphs[0]
    except Exception:  # flatbuffers raises struct / index / unicode errors on junk
        raise ModelLoadError(
            f"'{path}' is not a readable TFLite flatbuffer (it does not parse); the file is truncated or "
            f"not a .tflite model: convert it again."
        ) from None
    op_names, type_names = _names(fb.BuiltinOperator), _names(fb.TensorType)

    def tensor_type(i: int) -> str:
        return type_names.get(graph.tensors[i].type, str(graph.tensors[i].type))

    ops = []
    producer: dict[int, str] = {}  # tensor -> op that writes it
    for op in graph.operators:
        code = model.operatorCodes[op.opcodeIndex]
        name = op_names.get(flatbuffer_utils.get_builtin_code_from_operator_code(code), "?")
        if name == "CUSTOM":
            name = f"CUSTOM:{code.customCode.decode(errors='replace')}"
        inputs = [i for i in (op.inputs if op.inputs is not None else []) if i >= 0]
        weight = graph.tensors[inputs[1]] if name in MAC_OPS and len(inputs) > 1 else None
        outputs = [i for i in (op.outputs if op.outputs is not None else []) if i >= 0]
        ops.append({
            "op": name,
            "inputs": [tensor_type(i) for i in inputs],
            "outputs": [tensor_type(i) for i in outputs],
            "weight_elements": int(np.prod(weight.shape)) if weight is not None and weight.shape is not None else 0,
            "const_elements": sum(_elements(graph.tensors[i]) for i in inputs if _is_constant(model, graph.tensors[i])),
            # fed by a DEQUANTIZE of an activation (not of a constant weight): float work inside an int8 graph
            "after_dequantize": any(producer.get(i) == "DEQUANTIZE!" for i in inputs),
        })
        for i in outputs:
            activation = name == "DEQUANTIZE" and not any(_is_constant(model, graph.tensors[j]) for j in inputs)
            producer[i] = "DEQUANTIZE!" if activation else name
    return ops, graph, type_names


def _is_constant(model: Any, tensor: Any) -> bool:
    buffer = model.buffers[tensor.buffer] if 0 < tensor.buffer < len(model.buffers) else None
    return buffer is not None and buffer.data is not None and len(buffer.data) > 0


def _elements(tensor: Any) -> int:
    return int(np.prod(tensor.shape)) if tensor.shape is not None else 0


def float_islands(ops: list[dict[str, Any]]) -> list[str]:
    """Ops that run in float between a DEQUANTIZE and a QUANTIZE of activations (PReLU, some activations)."""
    return [f"{i}:{o['op']}" for i, o in enumerate(ops)
            if o["after_dequantize"] and o["op"] not in ("QUANTIZE", "DEQUANTIZE") and _kind(o) == "float"]


def _kind(op: dict[str, Any]) -> str:
    """int8: integer activations in and out; hybrid: integer weights only; float otherwise."""
    act_in = op["inputs"][0] if op["inputs"] else ""
    act_out = op["outputs"][0] if op["outputs"] else ""
    if act_in in INTEGER_TYPES and act_out in INTEGER_TYPES:
        return "int8"
    if len(op["inputs"]) > 1 and op["inputs"][1] in INTEGER_TYPES:
        return "hybrid"
    return "float"


def summarize(path: Path) -> dict[str, Any]:
    """Op histogram, tensor dtype counts, int8 share of the compute (by weight elements), float compute ops."""
    ops, graph, type_names = read_ops(path)
    compute = [o for o in ops if o["op"] in MAC_OPS]
    islands = float_islands(ops)
    island_w = sum(max(ops[int(s.split(":")[0])]["const_elements"], 1) for s in islands)
    total_w = sum(max(o["weight_elements"], 1) for o in compute) + island_w
    int8_w = sum(max(o["weight_elements"], 1) for o in compute if _kind(o) == "int8")
    hybrid_w = sum(max(o["weight_elements"], 1) for o in compute if _kind(o) == "hybrid")
    io = [graph.tensors[i] for i in list(graph.inputs) + list(graph.outputs)]
    return {
        "ops": dict(Counter(o["op"] for o in ops).most_common()),
        "op_count": len(ops),
        "tensor_dtypes": dict(Counter(type_names.get(t.type, str(t.type)) for t in graph.tensors).most_common()),
        "io_dtypes": sorted({type_names.get(t.type, str(t.type)) for t in io}),
        "compute_ops": len(compute),
        "int8_compute_ops": sum(1 for o in compute if _kind(o) == "int8"),
        # floored, so a model with any float work left never reads 1.0
        "int8_share": math.floor(int8_w / total_w * 1e4) / 1e4 if total_w else 0.0,
        "int8_weight_share": round((int8_w + hybrid_w) / total_w, 4) if total_w else 0.0,
        "float_compute_ops": [f"{i}:{o['op']}" for i, o in enumerate(ops) if o["op"] in MAC_OPS and _kind(o) != "int8"],
        "float_islands": islands,
    }


def inspect_tflite(path: Path) -> dict[str, Any]:
    """What ``compressor inspect`` prints for a .tflite file."""
    info = summarize(path)
    signature, facts = tflite_signature(path)
    info["inputs"] = [{"name": s.name, "shape": list(s.shape)} for s in signature.inputs]
    info["outputs"] = [{"name": s.name, "shape": list(s.shape)} for s in signature.outputs]
    if facts["static_batch"] is not None:
        info["static_batch"] = facts["static_batch"]
    return info


def coverage(path: Path, input_shapes: dict[str, list[int]] | None = None) -> dict[str, Any]:
    """The run step's coverage entry for a quantized .tflite: int8 share and the float compute left."""
    info = summarize(path)
    return {"int8_share": info["int8_share"], "int8_weight_share": info["int8_weight_share"],
            "float_compute_ops": info["float_compute_ops"], "float_islands": info["float_islands"]}


_QUANTIZED = (np.int8, np.uint8, np.int16)


def _open_interpreter(path: Path, threads: int = 1, xnnpack: bool = True) -> Any:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    try:
        return Interpreter(model_path=str(path), num_threads=threads, experimental_op_resolver_type=resolver)
    except (ValueError, RuntimeError) as exc:
        first = first_line(exc, 200)
        raise ModelLoadError(
            f"LiteRT could not load '{path}': {first}. The file is truncated or not a TFLite model; "
            f"convert it again (convert.tflite)."
        ) from None


SIGNATURE_PREFIX = "serving_default_"


def io_name(detail: dict[str, Any]) -> str:
    """A tensor's name as callers feed it: the signature's prefix dropped (``serving_default_input_ids`` ->
    ``input_ids``, the names litert-torch writes for keyword inputs)."""
    name = str(detail["name"])
    return name[len(SIGNATURE_PREFIX):] if name.startswith(SIGNATURE_PREFIX) else name


def _is_quantized(detail: dict[str, Any]) -> bool:
    scale, _ = detail.get("quantization", (0.0, 0))
    return detail["dtype"] in _QUANTIZED and scale != 0.0


def quantize(x: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    """Float feeds to the tensor's integer type with its scale and zero point; others just cast."""
    if not _is_quantized(detail) or not np.issubdtype(x.dtype, np.floating):
        return x.astype(detail["dtype"], copy=False)
    scale, zero = detail["quantization"]
    info = np.iinfo(detail["dtype"])
    return np.clip(np.round(x / scale + zero), info.min, info.max).astype(detail["dtype"])


def dequantize(y: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    """Integer outputs back to float32 with the tensor's scale and zero point."""
    if not _is_quantized(detail):
        return y
    scale, zero = detail["quantization"]
    return (y.astype(np.float32) - zero) * np.float32(scale)


def tflite_signature(path: Path, layout: str | None = None) -> tuple[Signature, dict[str, Any]]:
    """The model's inputs and outputs as callers feed them (floats for quantized I/O), and I/O facts.

    The second value says the I/O dtypes in the file and whether the batch dimension is fixed.
    """
    interpreter = _open_interpreter(path)

    def spec(detail: dict[str, Any]) -> TensorSpec:
        dims = list(detail.get("shape_signature", detail["shape"]))
        shape = tuple(BATCH if i == 0 else (int(d) if d >= 0 else f"dim{i}") for i, d in enumerate(dims))
        dtype = "float32" if _is_quantized(detail) else np.dtype(detail["dtype"]).name
        return TensorSpec(io_name(detail), shape, dtype)

    ins, outs = interpreter.get_input_details(), interpreter.get_output_details()
    inputs = tuple(spec(d) for d in ins)
    if layout is None:
        layout = "NCHW"
        for s in inputs:  # a standalone .tflite: TFLite's convention is NHWC unless channels plainly lead
            if len(s.shape) == 4:
                layout = "NCHW" if s.shape[1] in (1, 3) and isinstance(s.shape[3], int) and s.shape[3] > 4 else "NHWC"
    facts = {
        "io_dtypes": sorted({np.dtype(d["dtype"]).name for d in ins + outs}),
        "static_batch": next((int(d["shape"][0]) for d in ins if d.get("shape_signature", [-1])[0] != -1), None),
    }
    return Signature(inputs, tuple(spec(d) for d in outs), layout), facts


def import_tflite(src: Path, dst_dir: Path) -> tuple[Path, Signature, dict[str, Any]]:
    """Copy a .tflite file into the store after checking that LiteRT can open it."""
    read_ops(src)  # a clear ModelLoadError for a truncated or foreign file
    signature, facts = tflite_signature(src)
    dst = dst_dir / "model.tflite"
    shutil.copyfile(src, dst)
    return dst, signature, facts
