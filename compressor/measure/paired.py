"""Paired comparisons: two (or more) models timed in interleaved rounds, a fresh process each, and a
verdict on their speed ratio that a noisy machine cannot fake.

A round measures every model of a group once, in turn, forward on even rounds and backward on odd
ones (A B, B A, ...), so drift in the machine's load lands on both sides of each pair. A pair's
figure per round is the ratio of the two p50s of that round; its speed-up is the median of those
ratios, with a distribution-free interval for that median (order statistics of the rounds). The
verdict says "slower" only when the whole interval lies below ``1 / (1 + min_effect)``.

The rounds ask for one callable, ``measure(model) -> p50 ms``; what a model is (an artifact on a
target and batch) and how it is measured belong to the caller.
"""
from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

VERDICTS = ("faster", "slower", "no change", "inconclusive")


@dataclass(frozen=True)
class PairedSettings:
    """How many rounds, and the smallest speed change worth a verdict."""

    rounds: int = 5  # at least this many rounds
    max_rounds: int = 15  # extended one round at a time while a verdict is inconclusive, up to this
    min_effect: float = 0.05  # "slower" below 1 / (1 + min_effect), "faster" above 1 + min_effect
    confidence: float = 0.95


def median_interval(ratios: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """A distribution-free interval for the median: the order statistics x(k) .. x(n-k+1).

    k is the largest rank whose binomial tail P(Bin(n, 1/2) < k) stays within (1 - confidence) / 2.
    Below 6 rounds no rank reaches 95%: the interval is then the rounds' range (93.75% at 5 rounds).
    """
    xs = sorted(ratios)
    n = len(xs)
    if n == 0:
        return (math.nan, math.nan)
    alpha = (1.0 - confidence) / 2.0
    k, tail = 1, 0.0
    for rank in range(1, n // 2 + 1):
        tail += math.comb(n, rank - 1) / 2.0 ** n  # P(Bin(n, 1/2) <= rank - 1)
        if tail > alpha:
            break
        k = rank
    return (xs[k - 1], xs[n - k])


def verdict(interval: tuple[float, float], min_effect: float) -> str:
    """faster / slower / no change / inconclusive, from where the interval lies against 1 +- min_effect."""
    lo, hi = interval
    up, down = 1.0 + min_effect, 1.0 / (1.0 + min_effect)
    if lo > up:
        return "faster"
    if hi < down:
        return "slower"
    if lo >= down and hi <= up:
        return "no change"
    return "inconclusive"


def summarize_ratios(ratios: Sequence[float], settings: PairedSettings) -> dict[str, Any]:
    """A pair's record: the per-round ratios, their median, interval, verdict and coefficient of variation."""
    interval = median_interval(ratios, settings.confidence)
    mean = statistics.fmean(ratios)
    cv = statistics.pstdev(ratios) / mean if len(ratios) > 1 and mean else 0.0
    return {"rounds": [round(r, 4) for r in ratios], "speedup": round(statistics.median(ratios), 4),
            "interval": [round(interval[0], 4), round(interval[1], 4)],
            "verdict": verdict(interval, settings.min_effect), "cv": round(cv, 4), "min_effect": settings.min_effect}


def paired_rounds(measure: Callable[[Hashable], float], pairs: Sequence[tuple[Hashable, Hashable]],
                  settings: PairedSettings) -> dict[tuple[Hashable, Hashable], dict[str, Any]]:
    """Each pair ``(before, after)`` measured in interleaved rounds; its speed-up is before / after.

    Models shared by several pairs are measured once per round and serve every pair they are in.
    After ``settings.rounds`` rounds, only the models of pairs still inconclusive are measured again,
    one round at a time, until every verdict is reached or ``settings.max_rounds`` is.
    """
    pairs = list(dict.fromkeys(pairs))
    ratios: dict[tuple[Hashable, Hashable], list[float]] = {p: [] for p in pairs}
    open_pairs = list(pairs)
    for r in range(settings.max_rounds):
        models = list(dict.fromkeys(m for p in open_pairs for m in p))
        order = models if r % 2 == 0 else models[::-1]
        p50 = {m: measure(m) for m in order}
        for before, after in open_pairs:
            ratios[(before, after)].append(p50[before] / p50[after] if p50[after] else math.inf)
        if r + 1 >= settings.rounds:
            open_pairs = [p for p in open_pairs if summarize_ratios(ratios[p], settings)["verdict"] == "inconclusive"]
        if not open_pairs:
            break
    return {p: summarize_ratios(ratios[p], settings) for p in pairs}
