"""The one timing loop's statistics and its run floor."""
from __future__ import annotations

from compressor.measure.timing import TimingSettings, percentile, summarize, time_loop


def test_percentiles_and_summary() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    t = summarize([1_000_000, 2_000_000, 3_000_000])
    assert (t.p50_ms, t.runs, t.min_ms) == (2.0, 3, 1.0) and t.cv > 0


def test_time_loop_meets_run_floor() -> None:
    calls = []
    t = time_loop(lambda: calls.append(1), TimingSettings(warmup_runs=3, warmup_seconds=0, min_runs=20, min_seconds=0))
    assert t.runs == 20 and len(calls) == 23


def test_robust_cv_ignores_a_few_stalled_runs() -> None:
    from compressor.measure.timing import summarize

    steady = [100_000 + 1_000 * (i % 5) for i in range(200)]  # 0.100-0.104 ms
    stalled = steady[:-2] + [20_000_000, 30_000_000]  # two runs stalled for 20-30 ms
    t = summarize(stalled)
    assert t.cv > 1 and t.robust_cv < 0.05  # std / mean is ruled by the stalls; the bulk is steady
    assert summarize([100_000, 200_000] * 50).robust_cv > 0.3
