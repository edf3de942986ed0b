"""The ONNX side of per-node precision (``nodes: auto``): units of the graph, their kernel times
from ONNX Runtime's per-operator profile, the baked graph, and the side-by-side re-measure."""
from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from compressor.formats import Format
from compressor.measure.probe import ProbeTarget
from compressor.passes.quantize._onnx import _FLOAT_CHAIN_OPS, COMPUTE_OPS
from compressor.passes.quantize.precision import Unit

PROFILE_WARMUP, PROFILE_RUNS, PROFILE_SECONDS = 1, 30, 0.3  # per model and batch size: at most / about


def graph_units(path: Path, op_types: list[str] | None, exclude: list[str]) -> list[Unit]:
    """Each compute node with the single-consumer Relu / Clip / MaxPool chain after it, in graph order."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    consumers: dict[str, list[Any]] = defaultdict(list)
    for node in model.graph.node:
        for name in node.input:
            consumers[name].append(node)
    allowed = COMPUTE_OPS & set(op_types) if op_types else COMPUTE_OPS
    units = []
    for node in model.graph.node:
        if node.op_type not in allowed or not node.name or node.name in exclude:
            continue
        chain, current = [node.name], node
        while len(consumers[current.output[0]]) == 1 and consumers[current.output[0]][0].op_type in _FLOAT_CHAIN_OPS:
            current = consumers[current.output[0]][0]
            chain.append(current.name)
        units.append(Unit(node.name, node.op_type, tuple(chain)))
    return units


def unit_lookup(path: Path, units: list[Unit]) -> dict[str, str]:
    """Names ORT gives optimized nodes (a source node's name, or its output tensor's) -> unit."""
    import onnx

    by_node = {n: u.name for u in units for n in u.nodes}
    lookup = dict(by_node)
    for node in onnx.load(str(path), load_external_data=False).graph.node:
        if node.name in by_node:
            lookup.update({out: by_node[node.name] for out in node.output})
    return lookup


_SUFFIX = re.compile(r"(_token_\d+|_nchwc|_quant)+$")


def profile_costs(model: Path, feeds: dict[int, dict[str, np.ndarray]], lookup: dict[str, str],
                  where: ProbeTarget) -> dict[str, Any]:
    """{unit: {batch size: median kernel µs per run}}, plus "_total": the whole model's, per batch size, from the
    runtime's profiler on ``where`` (the one reader of ORT's profile trace: ``backends``' ``profile_ops``)."""
    from compressor.measure.probe import profile_nodes

    costs: dict[str, dict[int, float]] = defaultdict(dict)
    for batch, feed in feeds.items():
        nodes = profile_nodes(model, Format.ONNX, where, feed, PROFILE_WARMUP, PROFILE_RUNS, PROFILE_SECONDS)
        us = {n["node"]: n.get("median_ms", n["ms"]) * 1000.0 for n in nodes}  # medians: robust on a busy machine
        costs["_total"][batch] = round(sum(us.values()), 2)
        for name, t in us.items():
            unit = lookup.get(_SUFFIX.sub("", name.removeprefix("fused ")))
            if unit is not None:
                costs[unit][batch] = round(costs[unit].get(batch, 0.0) + t, 2)
    return dict(costs)


def bake_level(where: ProbeTarget) -> tuple[str, str]:
    """The ORT optimization level a graph is baked at for ``where``, and what that means for the ledger."""
    if where.device == "cpu":
        return "all", "ORT level all, Q/DQ propagation off: float nodes stay float (x86 NCHWc layouts fixed in)"
    return "basic", (f"ORT level basic, Q/DQ propagation off: float nodes stay float ({where.name} applies its own "
                     f"fusions when it loads the file)")


def bake(src: Path, dst: Path, where: ProbeTarget) -> Path:
    """ORT's offline optimization with Q/DQ left where the quantizer put them, so float units stay float
    wherever the file is loaded: level all on CPU (ONNX Runtime fixes the kernels, and this CPU's layouts,
    in it), level basic (provider-neutral) for another execution provider."""
    from compressor.frameworks._onnx import ort_optimize

    ort_optimize(src, dst, bake_level(where)[0], ["QDQPropagationTransformer"])
    return dst


def side_by_side(a: Path, b: Path, feeds: dict[int, dict[str, np.ndarray]], where: ProbeTarget,
                 rounds: int = 3) -> tuple[float, float]:
    """p50 ms of ``a`` and ``b`` on ``where`` summed over batch sizes, timed in interleaved rounds, 1 thread."""
    from compressor.measure.probe import side_by_side as timed

    p50 = timed({"a": a, "b": b}, Format.ONNX, where, feeds, rounds)
    return p50["a"], p50["b"]


def side_by_side_many(paths: dict[str, Path], feeds: dict[int, dict[str, np.ndarray]], where: ProbeTarget,
                      rounds: int = 3) -> dict[str, float]:
    """Each model's p50 ms on ``where`` summed over batch sizes, all timed in interleaved rounds, 1 thread."""
    from compressor.measure.probe import side_by_side as timed

    return timed(paths, Format.ONNX, where, feeds, rounds)


def batch_feeds(split: Any, signature: Any, batch_sizes: tuple[int, ...]) -> dict[int, dict[str, np.ndarray]]:
    """One feed per batch size from the calibration samples (repeated when there are fewer)."""
    from compressor.data import feeds_for

    out = {}
    for batch in batch_sizes:
        idx = np.arange(batch) % len(split)
        arrays = {k: np.ascontiguousarray(v[idx]) for k, v in split.inputs.items()}
        out[batch] = feeds_for(signature, arrays, split.feeding)
    return out
