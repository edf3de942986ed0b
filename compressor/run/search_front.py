"""What a search reports: the best-so-far Pareto front of its trials, and which of them beat the
hand-written variants with intervals that do not overlap.

Framework-free: a trial here is its summary dict (``metric``, ``p50_ms`` with ``p50_low_ms`` /
``p50_high_ms``, ``size_bytes``, ``within_budget``), as stored with the Optuna trial.
"""
from __future__ import annotations

import math
from typing import Any

Z95 = 1.959964


def wilson_interval(share: float, n: int) -> tuple[float, float]:
    """The 95% Wilson score interval of a proportion measured on ``n`` samples (accuracy, top-5)."""
    if n <= 0:
        return share, share
    centre = (share + Z95 ** 2 / (2 * n)) / (1 + Z95 ** 2 / n)
    half = Z95 * math.sqrt(share * (1 - share) / n + Z95 ** 2 / (4 * n * n)) / (1 + Z95 ** 2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def metric_interval(metric: str, value: float, n: int) -> tuple[float, float]:
    """A 95% interval of a metric value: Wilson for shares of correct samples, the value itself otherwise."""
    return wilson_interval(value, n) if metric in ("accuracy", "top5") else (value, value)


def objective_values(summary: dict[str, Any], objectives: list[str], higher_is_better: bool) -> list[float]:
    """A trial's objectives as Optuna sees them, in order (the metric keeps its own direction)."""
    table = {"metric": summary["metric"], "p50": summary["p50_ms"], "size": summary["size_bytes"]}
    return [float(table[o]) for o in objectives]


def directions(objectives: list[str], higher_is_better: bool) -> list[str]:
    """Optuna's study directions for ``objectives``."""
    return ["maximize" if o == "metric" and higher_is_better else "minimize" for o in objectives]


def _better_or_equal(a: list[float], b: list[float], signs: list[int]) -> bool:
    return all(s * x >= s * y for x, y, s in zip(a, b, signs))


def pareto_front(summaries: list[dict[str, Any]], objectives: list[str], higher_is_better: bool) -> list[dict[str, Any]]:
    """The trials within budget that no other trial within budget beats on every objective."""
    signs = [1 if d == "maximize" else -1 for d in directions(objectives, higher_is_better)]
    feasible = [s for s in summaries if s.get("within_budget")]
    values = [objective_values(s, objectives, higher_is_better) for s in feasible]
    front = []
    for i, s in enumerate(feasible):
        beaten = any(_better_or_equal(values[j], values[i], signs) and values[j] != values[i]
                     for j in range(len(feasible)) if j != i)
        if not beaten:
            front.append(s)
    return front


def dominates(trial: dict[str, Any], variant: dict[str, Any], higher_is_better: bool) -> str | None:
    """Why ``trial`` beats ``variant`` on latency and metric with non-overlapping intervals, or None.

    Faster (its p50 interval wholly below) at an equal or better metric, or better (its metric
    interval wholly beyond) at an equal or lower p50.
    """
    sign = 1 if higher_is_better else -1
    t_lo, t_hi = sorted(trial["metric_interval"], key=lambda x: sign * x)
    v_lo, v_hi = sorted(variant["metric_interval"], key=lambda x: sign * x)
    metric_ok = sign * trial["metric"] >= sign * variant["metric"]
    if metric_ok and trial["p50_high_ms"] < variant["p50_low_ms"]:
        return (f"faster: p50 {trial['p50_ms']:.4g} ms [{trial['p50_low_ms']:.4g}, {trial['p50_high_ms']:.4g}] vs "
                f"{variant['p50_ms']:.4g} ms [{variant['p50_low_ms']:.4g}, {variant['p50_high_ms']:.4g}] at metric "
                f"{trial['metric']:.4f} vs {variant['metric']:.4f}")
    if trial["p50_ms"] <= variant["p50_ms"] and sign * t_lo > sign * v_hi:
        return (f"better: metric {trial['metric']:.4f} [{t_lo:.4f}, {t_hi:.4f}] vs {variant['metric']:.4f} "
                f"[{v_lo:.4f}, {v_hi:.4f}] at p50 {trial['p50_ms']:.4g} vs {variant['p50_ms']:.4g} ms")
    return None


def dominance(trials: list[dict[str, Any]], variants: list[dict[str, Any]], higher_is_better: bool) -> list[dict[str, Any]]:
    """For each hand-written variant: the trials within budget that beat it, and how."""
    rows = []
    for v in variants:
        beaten_by = [{"trial": t["name"], "how": how} for t in trials if t.get("within_budget")
                     if (how := dominates(t, v, higher_is_better))]
        rows.append({"variant": v["name"], "dominated_by": beaten_by})
    return rows
