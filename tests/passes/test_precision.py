"""Per-node precision (quantize.onnx.static nodes: auto): the neutral choice with stand-in
measurements, the profile parser, and the pass end to end on a tiny CNN."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from compressor.passes.quantize.fallback import Score
from compressor.passes.quantize.precision import Unit, per_node_precision
from compressor.passes.registry import build_pass
from compressor.run.step import apply_pass
from tests.pass_context import make_context

UNITS = [Unit("conv1", "Conv", ("conv1", "relu1")), Unit("conv2", "Conv", ("conv2",)), Unit("fc", "Gemm", ("fc",))]
# kernel µs per batch size: conv1 is faster in float (a tiny reduction), the others in int8
INT8 = {"conv1": {1: 40.0, 32: 2000.0}, "conv2": {1: 20.0, 32: 700.0}, "fc": {1: 5.0, 32: 90.0},
        "_total": {1: 70.0, 32: 2800.0}}
FLOAT = {"conv1": {1: 25.0, 32: 600.0}, "conv2": {1: 60.0, 32: 9000.0}, "fc": {1: 9.0, 32: 300.0},
         "_total": {1: 100.0, 32: 10000.0}}


def run(times=(1.0, 2.0), drops=None, max_drop=0.01):
    """per_node_precision with stand-ins: a model is the frozenset of its float units."""
    drops = drops or {}
    calls = {"faster": 0}

    def costs(model):
        return FLOAT if model == "parent" else INT8

    def faster(a, b):
        calls["faster"] += 1
        return times

    def score(model):
        return Score(sum(d for u, d in drops.items() if u not in model), 0.1 * len(drops))

    result = per_node_precision(UNITS, "parent", frozenset, costs, lambda m: m, faster, score, max_drop)
    return result, calls


def test_float_faster_units_are_kept_float_when_the_whole_is_faster() -> None:
    result, calls = run(times=(1.0, 2.0))
    assert result.model == frozenset({"conv1"}) and result.float_units == ["conv1"] and calls["faster"] == 1
    by_node = {d["node"]: d for d in result.decisions}
    assert [d["node"] for d in result.decisions] == ["conv1", "conv2", "fc"]  # every unit listed
    assert by_node["conv1"]["precision"] == "float" and by_node["conv1"]["nodes"] == ["conv1", "relu1"]
    assert by_node["conv1"]["int8_us"] == {"1": 40.0, "32": 2000.0} and by_node["conv1"]["float_us"]["32"] == 600.0
    assert {by_node["conv2"]["precision"], by_node["fc"]["precision"]} == {"int8"}
    assert result.report()["float_nodes"] == ["conv1", "relu1"] and result.remeasured["chosen"] == "mixed"


def test_the_remeasure_keeps_all_int8_when_the_mix_is_not_faster() -> None:
    result, _ = run(times=(2.0, 1.0))
    assert result.model == frozenset() and result.float_units == [] and result.remeasured["chosen"] == "all-int8"
    conv1 = result.decisions[0]
    assert conv1["precision"] == "int8" and "not faster than all-int8 when re-measured" in conv1["why"]


def test_over_budget_the_sensitive_int8_unit_falls_back() -> None:
    result, _ = run(drops={"conv2": 0.05, "fc": 0.001})
    assert result.model == frozenset({"conv1", "conv2"}) and set(result.float_units) == {"conv1", "conv2"}
    conv2 = next(d for d in result.decisions if d["node"] == "conv2")
    assert conv2["precision"] == "float" and conv2["why"].startswith("accuracy:") and conv2["drop_alone"] == 0.05
    assert result.fallback["within_budget"] and result.report()["fallback"]["drop_after"] <= 0.01


def test_no_fallback_when_even_all_float_misses_the_budget() -> None:
    result, _ = run(drops={"conv2": 0.05, "elsewhere": 0.5})  # "elsewhere": damage no unit can take back
    assert result.model == frozenset({"conv1"}) and result.float_units == ["conv1"]  # the speed choice kept
    assert result.fallback["within_budget"] is False and result.fallback["drop_every_compute_node_float"] == 0.5
    assert all(d["precision"] == "int8" for d in result.decisions[1:])


def test_nodes_config() -> None:
    from compressor.errors import ConfigError

    assert build_pass("quantize.onnx.static").config.auto_nodes()
    assert build_pass("quantize.onnx.static").measures_speed()
    assert not build_pass("quantize.onnx.static", {"nodes": "all"}).config.auto_nodes()
    for explicit in ({"fallback": True}, {"min_int8_reduction": 16}, {"format": "qoperator"}):
        assert not build_pass("quantize.onnx.static", explicit).config.auto_nodes()  # the old special cases
        with pytest.raises(ConfigError, match="nodes: auto"):
            build_pass("quantize.onnx.static", {"nodes": "auto", **explicit})


def test_kernel_times_reads_each_runs_node_events(tmp_path: Path) -> None:
    from compressor.passes.quantize._onnx_precision import kernel_times

    events = [{"cat": "Session", "name": "model_run", "dur": 99},
              {"cat": "Node", "name": "conv_token_3_kernel_time", "dur": 10, "args": {"op_name": "QLinearConv"}},
              {"cat": "Node", "name": "conv_token_3_fence_before", "dur": 1, "args": {"op_name": "QLinearConv"}},
              {"cat": "Node", "name": "conv_token_3_kernel_time", "dur": 12, "args": {"op_name": "QLinearConv"}}]
    (tmp_path / "p.json").write_text(json.dumps(events))
    assert kernel_times(tmp_path / "p.json") == {"conv_token_3": ("QLinearConv", [10.0, 12.0])}


def test_auto_lists_every_compute_node_with_its_profile(tmp_path: Path, tiny_weights: Path) -> None:
    r = make_context(tmp_path, tiny_weights, benchmark={"batch_sizes": [1, 8], "threads": 1})
    art = apply_pass(r, r.reference, build_pass("convert.onnx"), "a", 0).artifact
    step = apply_pass(r, art, build_pass("quantize.onnx.static"), "a", 1)
    nodes = step.entry["report"]["nodes"]
    assert nodes["mode"] == "auto" and nodes["batch_sizes"] == [1, 8]
    assert [d["op_type"] for d in nodes["decisions"]] == ["Conv", "Gemm"]
    for d in nodes["decisions"]:  # both measured, at both batch sizes, in int8 and in float
        assert set(d["int8_us"]) == set(d["float_us"]) == {"1", "8"} and d["precision"] in ("int8", "float")
    assert set(step.artifact.meta["float_nodes"]) == {n for d in nodes["decisions"] if d["precision"] == "float"
                                                      for n in d["nodes"]}
    assert step.entry["within_budget"]
    plain = apply_pass(r, art, build_pass("quantize.onnx.static", {"nodes": "all"}), "a", 1)
    assert "nodes" not in plain.entry["report"] and plain.entry["coverage"]["int8_mac_share"] == 1.0


def test_bisection_finds_the_shortest_within_budget_prefix() -> None:
    from compressor.passes.quantize.fallback import accuracy_aware_fallback

    cost = {f"n{i}": 0.01 * (10 - i) for i in range(10)}  # n0 costs most; budget met once n0..n6 are float
    seen = []

    def score(floats):
        seen.append(len(floats))
        return Score(sum(c for n, c in cost.items() if n not in floats), 0.0)

    result = accuracy_aware_fallback([(n, "Conv") for n in cost], frozenset, score, max_drop=0.065, bisect=True)
    assert [s.node for s in result.float_nodes] == [f"n{i}" for i in range(7)] and result.within_budget
    assert len(result.steps) <= 5  # log2(10) + the full-prefix check, not 7 linear steps
