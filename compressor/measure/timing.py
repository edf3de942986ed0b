"""The one timing loop used for every runtime.

Warm-up by count and by time, then at least ``min_runs`` runs and at least ``min_seconds``
(capped by ``max_seconds``), timed with the monotonic nanosecond clock and a device sync.
"""
from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class TimingSettings:
    warmup_runs: int = 10
    warmup_seconds: float = 0.2
    min_runs: int = 100
    min_seconds: float = 1.0
    max_seconds: float = 30.0


@dataclass(frozen=True)
class Timing:
    """Latency statistics of one measurement, in milliseconds."""

    runs: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    std_ms: float
    cv: float
    min_ms: float
    robust_cv: float = 0.0  # 1.4826 x median absolute deviation / median: the spread of the bulk of the runs
    p50_low_ms: float = float("nan")  # a 95% interval of the median (order statistics of these runs)
    p50_high_ms: float = float("nan")

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def robust_cv(sorted_ms: list[float]) -> float:
    """The runs' spread around their median, insensitive to a few stalled runs.

    std / mean is dominated by a handful of runs the scheduler stalled (one 20 ms stall among 0.1 ms runs),
    which do not move the p50; the scaled median absolute deviation over the median watches the bulk,
    which is what a p50 is made of (1.4826 makes it equal std / mean for normal timings).
    """
    if not sorted_ms:
        return 0.0
    med = statistics.median(sorted_ms)
    mad = statistics.median(abs(x - med) for x in sorted_ms)
    return 1.4826 * mad / med if med else 0.0


def percentile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolated percentile of an already sorted list."""
    if not sorted_values:
        return float("nan")
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def median_interval(sorted_values: list[float]) -> tuple[float, float]:
    """A distribution-free 95% interval of the median: the order statistics n/2 -+ 1.96 sqrt(n)/2.

    It holds for the runs of one measurement; the spread between processes is not in it.
    """
    n = len(sorted_values)
    half = 1.96 * math.sqrt(n) / 2
    lo, hi = max(0, math.floor(n / 2 - half) - 1), min(n - 1, math.ceil(n / 2 + half))
    return sorted_values[lo], sorted_values[hi]


def summarize(samples_ns: list[int]) -> Timing:
    ms = sorted(s / 1e6 for s in samples_ns)
    mean = statistics.fmean(ms)
    std = statistics.pstdev(ms) if len(ms) > 1 else 0.0
    low, high = median_interval(ms)
    return Timing(
        runs=len(ms), p50_ms=percentile(ms, 50), p90_ms=percentile(ms, 90), p99_ms=percentile(ms, 99),
        mean_ms=mean, std_ms=std, cv=std / mean if mean else 0.0, min_ms=ms[0], p50_low_ms=low, p50_high_ms=high,
        robust_cv=robust_cv(ms),
    )


def time_loop(run: Callable[[], object], settings: TimingSettings, sync: Callable[[], None] | None = None) -> Timing:
    """Warm up, then time ``run`` (and ``sync``, when given) until both the run count and the time floor are met."""
    clock = time.perf_counter_ns
    start = clock()
    done = 0
    while done < settings.warmup_runs or (clock() - start) < settings.warmup_seconds * 1e9:
        run()
        if sync is not None:
            sync()
        done += 1
        if (clock() - start) > settings.max_seconds * 1e9 / 4:
            break
    samples: list[int] = []
    start = clock()
    while len(samples) < settings.min_runs or (clock() - start) < settings.min_seconds * 1e9:
        t0 = clock()
        run()
        if sync is not None:  # calling a no-op sync would be timed too
            sync()
        samples.append(clock() - t0)
        if (clock() - start) > settings.max_seconds * 1e9 and len(samples) >= 5:
            break
    return summarize(samples)


def time_session(session: Any, feeds: dict[str, Any], settings: TimingSettings) -> Timing:
    """The one timing loop around an opened backends Session's ``run(feeds)``, as every measurement times it.

    The call timed is the Session's bound ``run`` with the feeds built once (no closure in between), and the
    Session's ``sync`` only where its class has one: a CPU session's no-op sync is not timed.
    """
    from functools import partial

    from backends.base import Session

    sync = None if getattr(type(session), "sync", Session.sync) is Session.sync else session.sync
    return time_loop(partial(session.run, feeds), settings, sync)
