"""Per-node precision chosen from measurements (``quantize.onnx.static`` with ``nodes: auto``).

Framework-neutral: it asks a few callables for facts and decides which compute nodes run in int8.

- ``quantize(float_units) -> model``: the int8 model with those units kept in float;
- ``costs(model) -> {unit: {batch size: µs}}`` (and ``"_total"``: the whole model's): each unit's
  kernel time in that model, from the runtime's per-operator profile at the pipeline's batch sizes (a unit is a compute node with the chain of
  activation / pooling nodes that stays in float with it);
- ``finish(model) -> model``: fix the graph so the runtime keeps the choice (bake it);
- ``faster(a, b) -> (a_ms, b_ms)``: the two models timed side by side;
- ``score(model) -> Score``: metric drop and output error, for the budget.

A unit is kept in float when its float kernels, profiled in the float parent, are faster than its
int8 kernels, profiled in the all-int8 model, by more than ``margin`` (int8 loses on tiny dot
products, on layers dominated by re-layout, on ops ORT has no fast int8 kernel for). That choice
is re-measured against all-int8 as a whole and the faster one kept. Then, if the result is over
the accuracy budget and keeping every unit in float would meet it, int8 units go back to float by a
greedy knapsack (``precision_budget.py``: each unit's sensitivity measured with it alone quantized
and with it alone kept float, weighed against its measured speed cost of staying float; the cheapest
within-budget prefix of that ranking found by bisection), and the baked result is re-measured side
by side with the speed choice. Every unit's decision is listed with its figures.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from compressor.passes.quantize.fallback import Score
from compressor.passes.quantize.precision_budget import BudgetChoice, budgeted_float_set


@dataclass(frozen=True)
class Unit:
    """A compute node and the nodes that follow its precision (its activation / pooling chain)."""

    name: str
    op_type: str
    nodes: tuple[str, ...]


@dataclass
class PrecisionResult:
    model: Any
    float_units: list[str]
    decisions: list[dict[str, Any]]
    remeasured: dict[str, Any] = field(default_factory=dict)
    profile_totals_us: dict[str, Any] = field(default_factory=dict)
    fallback: dict[str, Any] | None = None  # the budget's account, when the speed choice is over it

    def report(self) -> dict[str, Any]:
        """The ledger's account: each unit's precision, with its measured figures and the reason."""
        out: dict[str, Any] = {"float_nodes": sorted(n for d in self.decisions if d["precision"] == "float"
                                                     for n in d["nodes"]),
                               "remeasured": self.remeasured, "profile_totals_us": self.profile_totals_us,
                               "decisions": self.decisions}
        if self.fallback is not None:
            out["budget"] = self.fallback
        return out


def speed_choice(units: list[Unit], int8: dict[str, float], flt: dict[str, float], margin: float) -> list[str]:
    """The units whose float kernels beat their int8 kernels by more than ``margin`` (a fraction)."""
    return [u.name for u in units if u.name in int8 and u.name in flt and flt[u.name] < (1 - margin) * int8[u.name]]


def per_node_precision(
    units: list[Unit], parent: Any, quantize: Callable[[list[str]], Any], costs: Callable[[Any], dict[str, Any]],
    finish: Callable[[Any], Any], faster: Callable[[Any, Any], tuple[float, float]],
    score: Callable[[Any], Score], max_drop: float, margin: float = 0.1,
    say: Callable[[str], None] = lambda _m: None,
) -> PrecisionResult:
    """Choose each unit's precision from its measured cost, re-measure the choice, keep the budget."""
    all_int8 = quantize([])
    c_int8, c_float = costs(all_int8), costs(parent)
    weights = {b: 1.0 / max(t, 1e-9) for b, t in c_int8.get("_total", {}).items()}
    speed = speed_choice(units, weighted_costs(c_int8, weights), weighted_costs(c_float, weights), margin)
    model, float_units, remeasured = all_int8, [], {"chosen": "all-int8", "why": "no unit is faster in float"}
    if speed:
        say(f"{len(speed)} of {len(units)} compute nodes are faster in float: re-measuring that choice")
        candidate = finish(quantize(speed))
        ms_mixed, ms_int8 = faster(candidate, all_int8)
        keep = ms_mixed < ms_int8
        remeasured = {"mixed_ms": round(ms_mixed, 4), "all_int8_ms": round(ms_int8, 4),
                      "chosen": "mixed" if keep else "all-int8",
                      "why": "summed p50 over the pipeline's batch sizes, interleaved rounds"}
        if keep:
            model, float_units = candidate, list(speed)
    result = PrecisionResult(model, float_units, _decisions(units, c_int8, c_float, float_units, speed, margin),
                             remeasured, {"all_int8": _by_batch(c_int8.get("_total")), "float": _by_batch(c_float.get("_total"))})
    first = score(model)
    if first.drop <= max_drop:
        return result
    int8_units = [(u.name, u.op_type) for u in units if u.name not in float_units]
    every = score(quantize([u.name for u in units]))  # can keeping compute nodes float reach the budget at all?
    if every.drop > max_drop:
        result.fallback = {"max_drop": max_drop, "needed": True, "within_budget": False, "drop": round(first.drop, 6),
                           "drop_every_compute_node_float": round(every.drop, 6),
                           "why": "even with every compute node in float the drop is over the budget: the loss comes "
                                  "from the other quantized ops or the calibration, so the speed choice is kept; try "
                                  "another calibration, per_channel, or op_types"}
        say(f"drop {first.drop:.4g} > budget {max_drop:g}, and {every.drop:.4g} with every compute node float: "
            f"node fallback cannot help, keeping the speed choice")
        return result
    return _keep_budget(result, [u for u, _ in int8_units], c_int8, c_float, weights, quantize, finish, faster,
                        score, max_drop, first, every, say)


def _keep_budget(result: PrecisionResult, candidates: list[str], c_int8: dict, c_float: dict, weights: dict,
                 quantize: Callable[[list[str]], Any], finish: Callable[[Any], Any],
                 faster: Callable[[Any, Any], tuple[float, float]], score: Callable[[Any], Score], max_drop: float,
                 first: Score, every: Score, say: Callable[[str], None]) -> PrecisionResult:
    """Over budget: the knapsack's float set on top of the speed choice, baked and re-measured against it."""
    say(f"drop {first.drop:.4g} > budget {max_drop:g}: measuring the int8 units' sensitivity both ways")
    # the trials are scored unbaked (baking changes kernels, not the arithmetic); the result is baked
    n_batches = max(len(weights), 1)
    share = {k: v / n_batches for k, v in weighted_costs(c_float, weights).items()}
    share = {k: share[k] - v / n_batches for k, v in weighted_costs(c_int8, weights).items() if k in share}
    known = sorted(share.values())
    unknown = known[len(known) // 2] if known else 0.0  # a unit missing from a profile weighs the median
    choice = budgeted_float_set(candidates, {u: share.get(u, unknown) for u in candidates},
                                result.float_units, quantize, score, max_drop, first, every, say)
    _record_budget(result, choice, first, max_drop)
    if choice.within_budget:
        baked = finish(choice.model)
        ms_chosen, ms_speed = faster(baked, result.model)
        result.fallback["remeasured"] = {"chosen_ms": round(ms_chosen, 4), "speed_choice_ms": round(ms_speed, 4),
                                         "why": "the budgeted choice, baked, timed side by side with the speed "
                                                "choice (summed p50 over the pipeline's batch sizes)"}
        say(f"within budget with {len(choice.float_units)} more float unit(s): {ms_chosen:.3f} ms vs "
            f"{ms_speed:.3f} ms for the speed choice")
        result.model, result.float_units = baked, [*result.float_units, *choice.float_units]
    return result


def _record_budget(result: PrecisionResult, choice: BudgetChoice, first: Score, max_drop: float) -> None:
    """Every candidate's figures and decision into the ledger's rows, and the search's account."""
    by_node = {d["node"]: d for d in result.decisions}
    back = set(choice.float_units) if choice.within_budget else set()
    for f in choice.figures:
        row = by_node[f.name]
        row.update(f.row())
        if f.name in back:
            row.update(precision="float", why=(
                f"accuracy: rank {f.rank} of {len(choice.figures)} by metric bought back per speed cost "
                f"(value {f.value:.3g}, output error {f.value_error:.3g}; staying float costs {f.cost:.2%} of the "
                f"model's time); kept float to stay within the budget"))
        else:
            row["why"] += f"; the budget did not need it in float (rank {f.rank} of {len(choice.figures)})"
    result.fallback = {
        "max_drop": max_drop, "needed": True, "within_budget": choice.within_budget, "drop": round(first.drop, 6),
        "drop_after": round(choice.final.drop, 6), "output_error_after": float(f"{choice.final.output_error:.4g}"),
        "method": "greedy knapsack: units ranked by metric bought back per speed cost of staying float, "
                  "the shortest within-budget prefix found by bisection",
        "float_units": [f.name for f in choice.figures if f.name in back], "trials": choice.trials,
        "steps": choice.steps}
    if not choice.within_budget:
        result.fallback["why"] = "no prefix of the ranking reached the budget: the speed choice is kept"


def weighted_costs(costs: dict[str, Any], weights: dict[Any, float]) -> dict[str, float]:
    """A unit's cost summed over batch sizes, each batch size weighted by 1 / the all-int8 model's total
    there (so batch 1 and batch 32 count alike)."""
    return {name: sum(us * weights.get(b, 0.0) for b, us in c.items()) for name, c in costs.items() if name != "_total"}


def _by_batch(costs: dict[Any, float] | None) -> dict[str, float] | None:
    """{batch size (as text, as JSON keeps it): µs}."""
    return None if costs is None else {str(b): us for b, us in costs.items()}


def _decisions(units: list[Unit], c_int8: dict, c_float: dict, float_units: list[str], speed: list[str],
               margin: float) -> list[dict[str, Any]]:
    rows = []
    for u in units:
        q, f = c_int8.get(u.name), c_float.get(u.name)
        row: dict[str, Any] = {"node": u.name, "op_type": u.op_type, "nodes": list(u.nodes),
                               "int8_us": _by_batch(q), "float_us": _by_batch(f),
                               "precision": "float" if u.name in float_units else "int8"}
        if q is None or f is None:
            row["why"] = "not found in the runtime's profile: left int8"
        elif u.name in float_units:
            row["why"] = f"float kernels faster than int8 by more than {margin:.0%} (profile), confirmed as a whole"
        elif u.name in speed:
            row["why"] = "faster in float alone, but the mixed model was not faster than all-int8 when re-measured"
        else:
            row["why"] = "int8 kernels faster (or within the margin)"
        rows.append(row)
    return rows
