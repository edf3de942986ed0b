"""Paired comparisons: the interval of the median ratio, the verdict, interleaving and extension of rounds."""
from __future__ import annotations

import itertools
import math

import pytest

from compressor.measure.paired import PairedSettings, median_interval, paired_rounds, summarize_ratios, verdict


def test_interval_is_the_range_below_six_rounds_then_narrows() -> None:
    assert median_interval([1.3, 0.9, 1.1, 1.0, 1.2]) == (0.9, 1.3)
    xs = [float(i) for i in range(1, 16)]  # 15 rounds: P(Bin(15, 1/2) <= 3) = 1.8% <= 2.5% < P(<= 4) = 5.9%
    assert median_interval(xs) == (4.0, 12.0)
    lo, hi = median_interval(xs, confidence=0.5)
    assert 4.0 < lo <= 8.0 <= hi < 12.0
    assert all(math.isnan(x) for x in median_interval([]))


def test_verdict_needs_the_whole_interval_past_the_threshold() -> None:
    assert verdict((0.5, 0.9), 0.05) == "slower"
    assert verdict((0.5, 0.96), 0.05) == "inconclusive"  # 0.96 > 1 / 1.05
    assert verdict((1.06, 2.0), 0.05) == "faster"
    assert verdict((0.97, 1.04), 0.05) == "no change"
    assert verdict((0.9, 1.2), 0.05) == "inconclusive"
    assert verdict((0.9, 1.2), 0.25) == "no change"


def test_summary_keeps_rounds_median_interval_and_cv() -> None:
    s = summarize_ratios([0.5, 0.4, 0.6, 0.5, 0.5], PairedSettings())
    assert s["speedup"] == 0.5 and s["interval"] == [0.4, 0.6] and s["verdict"] == "slower"
    assert s["rounds"] == [0.5, 0.4, 0.6, 0.5, 0.5] and s["min_effect"] == 0.05 and 0 < s["cv"] < 0.2


def test_rounds_alternate_order_and_share_models() -> None:
    calls: list[str] = []
    times = {"fp32": 2.0, "int8": 1.0, "dyn": 10.0}

    def measure(model: str) -> float:
        calls.append(model)
        return times[model]

    out = paired_rounds(measure, [("fp32", "int8"), ("fp32", "dyn")], PairedSettings(rounds=3, max_rounds=9))
    assert calls[:6] == ["fp32", "int8", "dyn", "dyn", "int8", "fp32"]  # A B C, C B A: fp32 measured once a round
    assert len(calls) == 9  # both verdicts reached after the minimum: no extra round
    assert out[("fp32", "int8")]["verdict"] == "faster" and out[("fp32", "int8")]["speedup"] == 2.0
    assert out[("fp32", "dyn")]["verdict"] == "slower" and out[("fp32", "dyn")]["interval"] == [0.2, 0.2]


def test_inconclusive_pairs_get_more_rounds_up_to_the_cap() -> None:
    noisy = itertools.cycle([1.0, 1.3, 0.8, 1.1])  # "b" swings around "a": never decided
    calls: list[str] = []

    def measure(model: str) -> float:
        calls.append(model)
        return 1.0 if model in ("a", "c") else (next(noisy) if model == "b" else 0.5)

    out = paired_rounds(measure, [("a", "b"), ("c", "d")], PairedSettings(rounds=3, max_rounds=7))
    assert len(out[("a", "b")]["rounds"]) == 7 and out[("a", "b")]["verdict"] == "inconclusive"
    assert len(out[("c", "d")]["rounds"]) == 3 and out[("c", "d")]["verdict"] == "faster"
    assert calls.count("c") == 3 and calls.count("a") == 7  # only the open pair's models are measured again


def test_a_failing_measurement_propagates() -> None:
    def measure(model: str) -> float:
        raise RuntimeError(f"{model} crashed")

    with pytest.raises(RuntimeError, match="a crashed"):
        paired_rounds(measure, [("a", "b")], PairedSettings())
