"""Side-by-side latency ratios: several models timed in one process, interleaved, medians.

Shared, noisy machines drift; timing A then B lets the drift land on one of them. Here every
round times each model once with the one timing loop (``compressor.measure.timing.time_loop``), in
turn, and the figure reported is the median over rounds of each round's p50.
"""
from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

from compressor.measure.timing import TimingSettings, time_loop

ROUND = TimingSettings(warmup_runs=3, warmup_seconds=0.0, min_runs=20, min_seconds=0.2, max_seconds=5.0)


def interleaved_rounds(runs: dict[str, Callable[[], Any]], rounds: int = 7,
                       settings: TimingSettings = ROUND) -> dict[str, list[float]]:
    """Each callable's p50 (ms) in every round, the callables timed in turn each round (the order
    reversed every other round, so no callable always goes first)."""
    per_round: dict[str, list[float]] = {name: [] for name in runs}
    for r in range(rounds):
        order = list(runs) if r % 2 == 0 else list(reversed(runs))
        for name in order:
            per_round[name].append(time_loop(runs[name], settings).p50_ms)
    return per_round


def interleaved_p50(runs: dict[str, Callable[[], Any]], rounds: int = 7, settings: TimingSettings = ROUND) -> dict[str, float]:
    """Median over ``rounds`` of each callable's p50 (ms), the callables timed in turn each round."""
    return {name: statistics.median(v) for name, v in interleaved_rounds(runs, rounds, settings).items()}
