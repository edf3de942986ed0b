"""Which int8 units go back to float when the speed choice is over the accuracy budget: a greedy knapsack.

Framework-neutral, like ``precision.py`` which calls it: ``quantize(float_units) -> model`` and
``score(model) -> Score`` are the only facts it asks for.

Each candidate unit (an int8 unit of the speed choice) is measured both ways:

- **alone int8**: the metric drop and output error with that unit alone quantized (every other unit
  float): its damage in isolation, not hidden by the others';
- **alone float**: the drop and error of the speed choice with that unit alone kept float: what keeping it
  float buys back in the model actually chosen. This second trial is run only for the units whose
  alone-int8 drop is over a tenth of the budget, or (where the metric barely moves on a small
  evaluation set) the few with the largest alone-int8 output error, at most ``MAX_FLOAT_TRIALS``; the
  others are listed as skipped, with the reason.

A unit's value is the larger of its two estimates (metric first, output error to break ties); its weight
is its measured speed cost of staying float (its float kernels' time minus its int8 kernels', as a
share of the all-int8 model's time, averaged over the batch sizes). Units are ranked by value per
weight, and the shortest (so cheapest) prefix of that ranking that brings the model within budget is
found by bisection; keeping more of the ranking float is assumed not to raise the drop.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from compressor.passes.quantize.fallback import Score

MAX_FLOAT_TRIALS = 12  # alone-float trials at most
MIN_FLOAT_TRIALS = 3  # by output error, when fewer units move the metric
MIN_COST = 1e-4  # a unit whose float kernels cost nothing more still weighs this (a share of the model's time)


@dataclass
class UnitFigures:
    """One candidate unit's sensitivity both ways, its speed cost of staying float, and its place."""

    name: str
    cost: float  # the share of the all-int8 model's time that keeping it float adds (may be <= 0)
    drop_alone_int8: float = 0.0
    error_alone_int8: float = 0.0
    drop_alone_float: float | None = None  # None: the second trial was skipped
    error_alone_float: float | None = None
    skipped: str | None = None
    value: float = 0.0
    value_error: float = 0.0
    rank: int = 0

    def row(self) -> dict[str, Any]:
        """The ledger's figures of this unit."""
        out: dict[str, Any] = {"drop_alone_int8": round(self.drop_alone_int8, 6),
                               "output_error_alone_int8": _sig(self.error_alone_int8),
                               "drop_alone_float": None if self.drop_alone_float is None else round(self.drop_alone_float, 6),
                               "output_error_alone_float": None if self.error_alone_float is None else _sig(self.error_alone_float),
                               "speed_cost_share": _sig(self.cost), "value": round(self.value, 6),
                               "value_output_error": _sig(self.value_error), "rank": self.rank}
        if self.skipped:
            out["alone_float_trial"] = self.skipped
        return out


@dataclass
class BudgetChoice:
    """The units sent back to float, every candidate's figures, and the trials that chose them."""

    float_units: list[str]
    figures: list[UnitFigures]
    within_budget: bool
    model: Any  # None when not within budget (the caller keeps its speed choice)
    final: Score
    steps: list[dict[str, Any]] = field(default_factory=list)
    trials: dict[str, int] = field(default_factory=dict)


def _sig(x: float) -> float:
    return float(f"{x:.4g}")


def budgeted_float_set(candidates: list[str], costs: dict[str, float], chosen: list[str],
                       quantize: Callable[[list[str]], Any], score: Callable[[Any], Score], max_drop: float,
                       base: Score, all_float: Score | None = None,
                       say: Callable[[str], None] = lambda _m: None) -> BudgetChoice:
    """Which of ``candidates`` (int8 in the speed choice, whose float units are ``chosen``, scored ``base``)
    to keep in float so the model is within ``max_drop``, paying as little speed (``costs``) as the
    measurements allow. ``all_float``: the score with every candidate float, where already measured."""
    figures = [UnitFigures(c, costs.get(c, MIN_COST)) for c in candidates]
    everything = [*chosen, *candidates]
    say(f"over budget: {len(candidates)} int8 units, each quantized alone")
    for f in figures:
        s = score(quantize([u for u in everything if u != f.name]))
        f.drop_alone_int8, f.error_alone_int8 = s.drop, s.output_error
    second = _second_trials(figures, max_drop)
    say(f"{len(second)} of them kept float alone in the chosen model")
    for f in figures:
        if f.name in second:
            s = score(quantize([*chosen, f.name]))
            f.drop_alone_float, f.error_alone_float = s.drop, s.output_error
        f.value = max(f.drop_alone_int8, 0.0 if f.drop_alone_float is None else base.drop - f.drop_alone_float, 0.0)
        f.value_error = max(f.error_alone_int8, 0.0 if f.error_alone_float is None else base.output_error - f.error_alone_float, 0.0)
    ranked = sorted(figures, key=lambda f: (-round(f.value / max(f.cost, MIN_COST), 9),
                                            -f.value_error / max(f.cost, MIN_COST), f.name))
    for i, f in enumerate(ranked):
        f.rank = i + 1
    choice = _shortest_prefix(ranked, chosen, quantize, score, max_drop, say, all_float)
    choice.trials = {"alone_int8": len(figures), "alone_float": len(second),
                     "alone_float_skipped": len(figures) - len(second), "prefix": len(choice.steps)}
    return choice


def _second_trials(figures: list[UnitFigures], max_drop: float) -> set[str]:
    """The units worth an alone-float trial: those whose alone-int8 drop is over a tenth of the budget, else
    (or besides, up to ``MIN_FLOAT_TRIALS``) the largest alone-int8 output errors; ``MAX_FLOAT_TRIALS`` at most."""
    by_drop = sorted(figures, key=lambda f: (-f.drop_alone_int8, -f.error_alone_int8))
    moving = [f for f in by_drop if f.drop_alone_int8 > max_drop / 10]
    by_error = [f for f in sorted(figures, key=lambda f: -f.error_alone_int8) if f not in moving]
    picked = (moving + by_error[:max(0, MIN_FLOAT_TRIALS - len(moving))])[:MAX_FLOAT_TRIALS]
    names = {f.name for f in picked}
    for f in figures:
        if f.name not in names:
            f.skipped = (f"skipped: quantized alone it costs {f.drop_alone_int8:.3g} of the metric (a tenth of the budget "
                         f"is {max_drop / 10:.3g}) and its output error is not among the {MIN_FLOAT_TRIALS} largest"
                         if f not in moving else f"skipped: past the {MAX_FLOAT_TRIALS} most sensitive units")
    return names


def _shortest_prefix(ranked: list[UnitFigures], chosen: list[str], quantize: Callable[[list[str]], Any],
                     score: Callable[[Any], Score], max_drop: float, say: Callable[[str], None],
                     all_float: Score | None) -> BudgetChoice:
    """The shortest prefix of ``ranked`` whose units, kept float with ``chosen``, bring the model within budget."""
    tried: dict[int, tuple[Any, Score]] = {} if all_float is None else {len(ranked): (None, all_float)}
    steps: list[dict[str, Any]] = []

    def trial(k: int) -> Score:
        if k not in tried:
            model = quantize([*chosen, *(f.name for f in ranked[:k])])
            tried[k] = (model, score(model))
            s = tried[k][1]
            steps.append({"float_units": k, "speed_cost_share": _sig(sum(max(f.cost, 0.0) for f in ranked[:k])),
                          "drop": round(s.drop, 6), "output_error": _sig(s.output_error)})
            say(f"budget: the first {k} of the ranking in float, drop {s.drop:.4g}")
        return tried[k][1]

    lo, hi = 0, len(ranked)  # lo: over budget (the speed choice is); hi: within, once checked
    if trial(hi).drop > max_drop:
        return BudgetChoice([f.name for f in ranked], ranked, False, None, tried[hi][1], steps)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if trial(mid).drop <= max_drop else (mid, hi)
    model, final = tried[hi]
    if model is None:  # the all-float score was handed in: make that model
        model = quantize([*chosen, *(f.name for f in ranked)])
    return BudgetChoice([f.name for f in ranked[:hi]], ranked, True, model, final, steps)
