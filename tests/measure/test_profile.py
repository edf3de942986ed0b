"""Per-operator profiles in a worker process: ONNX Runtime's profiler (torch.profiler: tests/run/test_why.py).

A tiny ONNX conv net and its dynamic-int8 twin (ConvInteger, which ONNX Runtime's CPU runs slowly)
make a pair that is slower in a known way; the profiles must name the operators each graph runs.
Structure and operator names are asserted, never speeds.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from compressor.artifact import Artifact
from tests.tiny_onnx import FAST_PROFILE, SAMPLES, artifact, conv_pair


@pytest.fixture(scope="module")
def onnx_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Artifact, Artifact]:
    return conv_pair(tmp_path_factory.mktemp("pair"))


def graph_ops(a: Artifact) -> list[str]:
    import onnx

    return [n.op_type for n in onnx.load(str(a.path)).graph.node]


def test_trace_ops_leaves_the_warm_up_out_and_averages_per_run() -> None:
    from backends._onnx import trace_ops

    def run(ts: int) -> list[dict]:
        return [{"cat": "Session", "name": "model_run", "ts": ts, "dur": 50},
                {"cat": "Node", "name": "c_kernel_time", "ts": ts + 1, "dur": 10 if ts else 1000,
                 "args": {"op_name": "Conv"}},
                {"cat": "Node", "name": "_kernel_time", "ts": ts + 2, "dur": 4,
                 "args": {"op_name": "Relu", "node_index": "7"}}]

    nodes, runs = trace_ops(run(0) + run(100) + run(200), skip_runs=1)  # the first run (1000 us) is warm-up
    assert runs == 2
    assert {n["node"]: (n["op"], n["kind"], n["ms"]) for n in nodes} == {
        "c": ("Conv", "float_compute", 0.01), "Relu#7": ("Relu", "other", 0.004)}
    from compressor.errors import MeasurementError

    with pytest.raises(MeasurementError, match="none after the 3 warm-up runs"):
        trace_ops(run(0), skip_runs=3)


def test_onnxruntime_profile_names_each_graphs_operators(onnx_pair: tuple[Artifact, Artifact]) -> None:
    from compressor.measure.profile import profile
    from compressor.run.why import op_diff

    fp32, int8 = (profile(a, "onnxruntime", "cpu", 4, 1, SAMPLES, FAST_PROFILE) for a in onnx_pair)
    assert fp32["profiler"] == int8["profiler"] == "onnxruntime" and fp32["runs"] == 5
    assert {n["kind"] for n in fp32["nodes"]} >= {"float_compute"}
    int8_ops = {n["op"] for n in int8["nodes"]}
    assert {"ConvInteger", "DynamicQuantizeLinear"} <= int8_ops and "ConvInteger" in graph_ops(onnx_pair[1])
    assert fp32["total_ms"] == pytest.approx(sum(n["ms"] for n in fp32["nodes"]), abs=1e-3)

    diff = op_diff(fp32, int8)
    fp32_ops = {n["op"] for n in fp32["nodes"]}
    assert {r["op"] for r in diff["gained"]} <= fp32_ops and {r["op"] for r in diff["lost"]} <= int8_ops
    # ConvInteger runs only in the output, float convs only in the input: the direction is structural
    assert "ConvInteger" in {r["op"] for r in diff["lost"]}
    float_ops = {n["op"] for n in fp32["nodes"] if n["kind"] == "float_compute"}
    assert float_ops & {r["op"] for r in diff["gained"]}
    assert all(r["input_ms"] == 0 < r["output_ms"] for r in diff["lost"] if r["op"] not in fp32_ops)
    quantizers = [n for n in int8["nodes"] if n["kind"] == "qdq"]
    assert diff["qdq"]["count"] == len(quantizers) == graph_ops(onnx_pair[1]).count("DynamicQuantizeLinear")
    assert diff["float_ms"] == 0.0  # every conv of the output runs in int8
    assert {n["node"] for n in diff["nodes"]["lost"]} <= {n["node"] for n in int8["nodes"]}


def test_a_runtime_without_a_profiler_says_so() -> None:
    from backends import get_runtime
    from compressor.errors import RuntimeUnavailableError
    from compressor.measure.profile import profiler_of

    assert profiler_of("litert") is None
    assert profiler_of("onnxruntime") == "onnxruntime" and profiler_of("torch") == "torch.profiler"
    with pytest.raises(RuntimeUnavailableError, match="litert has no per-operator profiler here"):
        get_runtime("litert").profile_ops(None, "cpu", 1, {}, 1, 1, 1.0)  # type: ignore[arg-type]


def test_a_failing_worker_is_a_measurement_error(tmp_path: Path) -> None:
    from compressor.errors import MeasurementError
    from compressor.measure.profile import profile

    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(MeasurementError, match=r"profiling .*broken.onnx on onnxruntime:cpu at batch 1 failed"):
        profile(artifact(broken), "onnxruntime", "cpu", 1, 1, SAMPLES, FAST_PROFILE)


def test_the_profile_loop_counts_its_warm_up_and_stops_a_slow_model_early() -> None:
    from backends.base import repeat

    calls = []
    assert repeat(lambda: calls.append(1), 4, 6, max_seconds=60.0) == (4, 6) and len(calls) == 10
    calls.clear()  # past max_seconds at once: 1 warm-up call, 3 counted ones
    assert repeat(lambda: calls.append(1), 10, 50, max_seconds=0.0) == (1, 3) and len(calls) == 4
