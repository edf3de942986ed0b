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


def test_over_budget_the_knapsack_buys_accuracy_back_where_float_costs_least() -> None:
    # conv2 and fc cost about the same accuracy; keeping fc float costs far less time (its int8 gain is small)
    result, calls = run(drops={"conv2": 0.021, "fc": 0.02}, max_drop=0.025)
    assert result.model == frozenset({"conv1", "fc"}) and result.float_units == ["conv1", "fc"]
    rows = {d["node"]: d for d in result.decisions}
    fc, conv2 = rows["fc"], rows["conv2"]
    assert fc["precision"] == "float" and fc["why"].startswith("accuracy: rank 1 of 2") and conv2["precision"] == "int8"
    for row, alone in ((fc, 0.02), (conv2, 0.021)):  # both ways, with the speed cost of staying float
        assert row["drop_alone_int8"] == alone and row["drop_alone_float"] == round(0.041 - alone, 6)
        assert row["speed_cost_share"] > 0 and row["value"] == alone
    assert conv2["speed_cost_share"] > 10 * fc["speed_cost_share"]
    budget = result.report()["budget"]
    assert budget["within_budget"] and budget["drop_after"] == 0.021 and budget["float_units"] == ["fc"]
    assert budget["trials"] == {"alone_int8": 2, "alone_float": 2, "alone_float_skipped": 0, "prefix": 1}
    assert calls["faster"] == 2 and set(budget["remeasured"]) >= {"chosen_ms", "speed_choice_ms"}


def test_the_second_trial_is_bounded_and_skips_are_said() -> None:
    from compressor.passes.quantize.precision_budget import MIN_FLOAT_TRIALS, budgeted_float_set

    names = [f"u{i}" for i in range(10)]
    drops = {"u3": 0.04}  # one unit moves the metric; the rest only the output error, u9 the most
    errors = {n: 0.001 * i for i, n in enumerate(names)}
    scored = []

    def score(floats):
        scored.append(floats)
        return Score(sum(d for n, d in drops.items() if n not in floats),
                     sum(e for n, e in errors.items() if n not in floats))

    base = score(frozenset())
    choice = budgeted_float_set(names, dict.fromkeys(names, 0.1), [], frozenset, score, 0.01, base)
    figures = {f.name: f for f in choice.figures}
    tried = {n for n, f in figures.items() if f.drop_alone_float is not None}
    assert tried == {"u3", "u9", "u8"} and len(tried) == MIN_FLOAT_TRIALS  # the metric mover, then the top errors
    assert all(figures[n].skipped.startswith("skipped:") for n in set(names) - tried)
    assert choice.float_units == ["u3"] and choice.within_budget and choice.final.drop == 0.0
    assert len(scored) == 1 + len(names) + len(tried) + choice.trials["prefix"]
    assert choice.trials["prefix"] <= 5  # bisection over 10, not one step per unit


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


def test_profile_costs_map_the_runtimes_nodes_to_units(monkeypatch, tmp_path: Path) -> None:
    """One profile reader (backends' ``trace_ops`` through ``measure.probe``): ORT's optimized node names
    (fused, NCHWc-suffixed, token-suffixed) land on their units, per batch size, in µs."""
    from compressor.measure import probe
    from compressor.passes.quantize import _onnx_precision as ox

    nodes = [{"node": "fused conv1_nchwc", "op": "FusedConv", "kind": "float_compute", "ms": 0.5},
             {"node": "relu1_token_3", "op": "Relu", "kind": "other", "ms": 0.25},
             {"node": "reorder", "op": "ReorderOutput", "kind": "other", "ms": 0.125}]
    seen = []
    monkeypatch.setattr(probe, "profile_nodes", lambda path, fmt, where, feed, *a: seen.append(where.name) or nodes)
    where = probe.ProbeTarget("onnxruntime", "cpu", "onnxruntime:cpu")
    costs = ox.profile_costs(tmp_path / "m.onnx", {1: {}, 4: {}}, {"conv1": "conv1", "relu1": "conv1"}, where)
    assert costs == {"_total": {1: 875.0, 4: 875.0}, "conv1": {1: 750.0, 4: 750.0}}
    assert seen == ["onnxruntime:cpu"] * 2


def test_auto_lists_every_compute_node_with_its_profile(tmp_path: Path, tiny_weights: Path) -> None:
    r = make_context(tmp_path, tiny_weights, benchmark={"batch_sizes": [1, 8], "threads": 1})
    art = apply_pass(r, r.reference, build_pass("convert.onnx"), "a", 0).artifact
    step = apply_pass(r, art, build_pass("quantize.onnx.static"), "a", 1)
    nodes = step.entry["report"]["nodes"]
    assert nodes["mode"] == "auto" and nodes["batch_sizes"] == [1, 8] and nodes["measured_on"] == "onnxruntime:cpu"
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
