"""benchmarks/kill_resume.py in small: two SIGKILLs at random moments, each resumed, and two concurrent runs."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.mark.slow
def test_killed_runs_resume_to_the_reference_results(tmp_path: Path) -> None:
    from benchmarks.kill_resume import run_checks

    lines: list[str] = []
    checks = run_checks(tmp_path, kills=2, seed=1, bench=False, say=lines.append)
    assert [c.name for c in checks] == ["kill 1", "kill 2", "two runs, one folder", "two runs, one cache"]
    assert {c.name: c.problems for c in checks} == {c.name: [] for c in checks}, "\n".join(lines)


def test_the_comparison_ignores_timings_only() -> None:
    from benchmarks.kill_resume import without_timings

    a = {"variants": [{"metric": 0.9, "ledger": [{"seconds": 1.0, "cache_hit": False, "parity": {"cosine": 1.0}}],
                       "benchmarks": [{"p50_ms": 1.0, "cached": False, "metric": 0.9}]}], "environment": {"cores": 2}}
    b = {"variants": [{"metric": 0.9, "ledger": [{"seconds": 2.0, "cache_hit": True, "parity": {"cosine": 1.0}}],
                       "benchmarks": [{"p50_ms": 3.0, "cached": True, "metric": 0.9}]}], "environment": {"cores": 8}}
    assert without_timings(a) == without_timings(b)
    b["variants"][0]["ledger"][0]["parity"]["cosine"] = 0.99
    assert without_timings(a) != without_timings(b)
