"""The ONNX side of per-node precision (``nodes: auto``): units of the graph, their kernel times
from ONNX Runtime's per-operator profile, the baked graph, and the side-by-side re-measure."""
from __future__ import annotations

import json
import re
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from compressor.passes.quantize._onnx import _FLOAT_CHAIN_OPS, COMPUTE_OPS
from compressor.passes.quantize.precision import Unit

PROFILE_RUNS, PROFILE_SECONDS = 30, 0.3  # per model and batch size, at most / about


def kernel_times(profile_json: Path) -> dict[str, tuple[str, list[float]]]:
    """ORT's profile file -> {node name of the optimized graph: (op type, [kernel µs of each run])}."""
    times: dict[str, tuple[str, list[float]]] = {}
    for event in json.loads(Path(profile_json).read_text()):
        if event.get("cat") == "Node" and event.get("name", "").endswith("_kernel_time"):
            entry = times.setdefault(event["name"][: -len("_kernel_time")], (event["args"].get("op_name", ""), []))
            entry[1].append(float(event["dur"]))
    return times


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


def profile_costs(model: Path, feeds: dict[int, dict[str, np.ndarray]], lookup: dict[str, str], work: Path) -> dict[str, Any]:
    """{unit: {batch size: median kernel µs per run}}, plus "_total": the whole model's, per batch size."""
    costs: dict[str, dict[int, float]] = defaultdict(dict)
    for batch, feed in feeds.items():
        nodes = _profile(model, feed, work / f"profile-b{batch}")
        costs["_total"][batch] = round(sum(statistics.median(t) for _, t in nodes.values()), 2)
        for name, (_, t) in nodes.items():
            unit = lookup.get(_SUFFIX.sub("", name.removeprefix("fused ")))
            if unit is not None:
                costs[unit][batch] = round(costs[unit].get(batch, 0.0) + statistics.median(t), 2)
    return dict(costs)


def _profile(model: Path, feed: dict[str, np.ndarray], prefix: Path) -> dict[str, tuple[str, list[float]]]:
    import time

    import onnxruntime as ort

    from compressor.frameworks._onnx import session_options

    opts = session_options(threads=1, profile=True)
    opts.profile_file_prefix = str(prefix)
    session = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
    session.run(None, feed)  # the first run allocates: not representative
    start, runs = time.perf_counter(), 0
    while runs < PROFILE_RUNS and (runs < 3 or time.perf_counter() - start < PROFILE_SECONDS):
        session.run(None, feed)
        runs += 1
    times = kernel_times(Path(session.end_profiling()))
    return {k: (op, t[1:]) for k, (op, t) in times.items() if len(t) > 1}  # drop the first run's events


def bake(src: Path, dst: Path) -> Path:
    """ORT's full offline optimization with Q/DQ left where the quantizer put them, so float units stay
    float wherever the file is loaded (ONNX Runtime fixes the kernels, and this CPU's layouts, in it)."""
    from compressor.frameworks._onnx import ort_optimize

    ort_optimize(src, dst, "all", ["QDQPropagationTransformer"])
    return dst


def side_by_side(a: Path, b: Path, feeds: dict[int, dict[str, np.ndarray]], rounds: int = 3) -> tuple[float, float]:
    """p50 ms of ``a`` and ``b`` summed over batch sizes, timed in interleaved rounds, 1 thread."""
    import onnxruntime as ort

    from compressor.frameworks._onnx import session_options
    from compressor.measure.compare import interleaved_p50
    from compressor.measure.timing import TimingSettings

    settings = TimingSettings(warmup_runs=2, warmup_seconds=0.0, min_runs=5, min_seconds=0.1, max_seconds=3.0)
    sessions = {k: ort.InferenceSession(str(p), session_options(1), providers=["CPUExecutionProvider"])
                for k, p in (("a", a), ("b", b))}
    total = {"a": 0.0, "b": 0.0}
    for feed in feeds.values():
        p50 = interleaved_p50({k: (lambda s=s: s.run(None, feed)) for k, s in sessions.items()}, rounds, settings)
        total = {k: total[k] + p50[k] for k in total}
    return total["a"], total["b"]


def batch_feeds(split: Any, signature: Any, batch_sizes: tuple[int, ...]) -> dict[int, dict[str, np.ndarray]]:
    """One feed per batch size from the calibration samples (repeated when there are fewer)."""
    from compressor.data import feeds_for

    out = {}
    for batch in batch_sizes:
        idx = np.arange(batch) % len(split)
        arrays = {k: np.ascontiguousarray(v[idx]) for k, v in split.inputs.items()}
        out[batch] = feeds_for(signature, arrays, split.feeding)
    return out
