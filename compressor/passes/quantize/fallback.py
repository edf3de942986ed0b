"""Accuracy-aware fallback: keep the nodes whose quantization costs the most in float.

Framework-neutral: it asks two callables for facts — ``quantize(float_nodes) -> model`` and
``score(model) -> (metric drop vs the reference, output error vs the float parent)`` — and decides
which nodes fall back.

Sensitivity of a node = the metric drop and the output error of a model in which that node alone
is quantized and every other candidate stays in float. Measured in isolation, a node's cost is not
hidden by the others': leaving one node out of a fully quantized model tells nothing when the
damage comes from a tensor two nodes share (an outlier activation quantized at the output of one
node and the input of the next), while quantizing each alone shows both. It costs one
quantization and one evaluation per candidate (the calibration is done once and reused). Ties in
the metric (common with accuracy on small evaluation sets) are broken by the output error.
Nodes then fall back one at a time, most sensitive first, each step re-quantized and measured,
until the model is within budget, ``max_nodes`` is reached, or nothing is left to try.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Score:
    """A candidate model's metric drop vs the pipeline's reference, and its output error vs the parent."""

    drop: float
    output_error: float


@dataclass(frozen=True)
class Sensitivity:
    """What keeping one node in float buys back."""

    node: str
    op_type: str
    drop_alone: float  # metric drop when only this node is quantized
    output_error_alone: float  # relative mean squared error of the outputs vs the float parent


@dataclass
class FallbackResult:
    float_nodes: list[Sensitivity]
    steps: list[dict[str, Any]]
    within_budget: bool
    model: Any
    initial: Score
    final: Score
    sensitivities: list[Sensitivity]

    def report(self, max_drop: float) -> dict[str, Any]:
        """The ledger entry's account of the fallback: what fell back, and why."""
        return {
            "max_drop": max_drop,
            "needed": bool(self.sensitivities),
            "within_budget": self.within_budget,
            "drop_all_int8": round(self.initial.drop, 6),
            "drop_after": round(self.final.drop, 6),
            "float_nodes": [
                {"node": s.node, "op_type": s.op_type, "drop_alone": round(s.drop_alone, 6),
                 "output_error_alone": float(f"{s.output_error_alone:.4g}"),
                 "reason": f"quantized alone it costs {s.drop_alone:.4g} of the metric and a relative output "
                           f"error of {s.output_error_alone:.3g}; rank {rank + 1} of {len(self.sensitivities)}"}
                for rank, s in enumerate(self.float_nodes)
            ],
            "steps": self.steps,
            "sensitivity": [asdict(s) for s in self.sensitivities],
        }


def accuracy_aware_fallback(
    candidates: list[tuple[str, str]],
    quantize: Callable[[list[str]], Any],
    score: Callable[[Any], Score],
    max_drop: float,
    max_nodes: int | None = None,
    say: Callable[[str], None] = lambda _m: None,
    bisect: bool = False,
) -> FallbackResult:
    """Quantize everything; while over budget, keep the most sensitive nodes in float.

    ``bisect``: instead of adding nodes one at a time, find the shortest prefix of the ranking that is
    within budget by bisection (log2 of the candidates' count in evaluations; it assumes that keeping
    more of the ranking in float does not raise the drop)."""
    model = quantize([])
    initial = score(model)
    if initial.drop <= max_drop or not candidates:
        return FallbackResult([], [], initial.drop <= max_drop, model, initial, initial, [])
    say(f"int8 drop {initial.drop:.4g} > budget {max_drop:g}: measuring {len(candidates)} nodes' sensitivity")
    names = [name for name, _ in candidates]
    sens = []
    for name, op_type in candidates:
        s = score(quantize([n for n in names if n != name]))
        sens.append(Sensitivity(name, op_type, s.drop, s.output_error))
    ranked = sorted(sens, key=lambda s: (-round(s.drop_alone, 9), -s.output_error_alone))
    limit = len(ranked) if max_nodes is None else min(max_nodes, len(ranked))
    if bisect:
        return _bisect(ranked, limit, quantize, score, max_drop, initial, say)
    chosen: list[Sensitivity] = []
    steps: list[dict[str, Any]] = []
    final = initial
    for s in ranked[:limit]:
        chosen.append(s)
        model = quantize([c.node for c in chosen])
        final = score(model)
        steps.append({"float_nodes": len(chosen), "added": s.node, "drop": round(final.drop, 6),
                      "output_error": float(f"{final.output_error:.6g}")})
        say(f"fallback: {len(chosen)} node(s) in float, drop {final.drop:.4g}")
        if final.drop <= max_drop:
            break
    return FallbackResult(chosen, steps, final.drop <= max_drop, model, initial, final, ranked)


def _bisect(ranked: list[Sensitivity], limit: int, quantize: Callable[[list[str]], Any],
            score: Callable[[Any], Score], max_drop: float, initial: Score, say: Callable[[str], None]) -> FallbackResult:
    """The shortest prefix of ``ranked`` (up to ``limit``) whose fallback is within budget, by bisection."""
    lo, hi = 0, limit  # lo: over budget (or untried); hi: the answer once checked
    tried: dict[int, tuple[Any, Score]] = {}
    steps: list[dict[str, Any]] = []

    def trial(k: int) -> tuple[Any, Score]:
        if k not in tried:
            model = quantize([s.node for s in ranked[:k]])
            tried[k] = (model, score(model))
            steps.append({"float_nodes": k, "drop": round(tried[k][1].drop, 6),
                          "output_error": float(f"{tried[k][1].output_error:.6g}")})
            say(f"fallback: {k} node(s) in float, drop {tried[k][1].drop:.4g}")
        return tried[k]

    if trial(hi)[1].drop > max_drop:  # even the whole prefix does not reach the budget
        model, final = tried[hi]
        return FallbackResult(ranked[:hi], steps, False, model, initial, final, ranked)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if trial(mid)[1].drop <= max_drop else (mid, hi)
    model, final = tried[hi]
    return FallbackResult(ranked[:hi], steps, True, model, initial, final, ranked)
