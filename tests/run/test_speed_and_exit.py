"""Speed checks between siblings, and measurement failures that fail the run."""
from __future__ import annotations

from types import SimpleNamespace

from compressor.passes.registry import build_pass
from compressor.run.results import exit_code, failed_benchmarks
from compressor.run.speed import sibling_checks

CPU = {"int8_dot_product": True}


def _outcome(name: str, config: dict, parent: str, final: str) -> SimpleNamespace:
    chain = [SimpleNamespace(sha256="ref"), SimpleNamespace(sha256=parent), SimpleNamespace(sha256=final, format="tflite")]
    return SimpleNamespace(name=name, passes=[build_pass("convert.onnx"), build_pass("convert.tflite", config)],
                           ledger=[{"pass": "x"}, {"pass": "convert.tflite", "config": config, "report": {}}],
                           chain=chain, artifact=chain[-1])


def _bench(p50: float) -> list[dict]:
    return [{"runtime": "litert", "device": "cpu", "batch_size": 1, "p50_ms": p50}]


def test_int8_slower_than_its_fp32_sibling_is_flagged() -> None:
    fp32 = _outcome("fp32", {}, "torch-model", "f32")
    int8 = _outcome("int8", {"quantize": "int8"}, "torch-model", "i8")
    found = sibling_checks([fp32, int8], {"f32": _bench(1.0), "i8": _bench(1.5)}, CPU)
    checks, warnings = found["int8"]
    assert checks[0]["sibling"] == "fp32" and checks[0]["speedup"] < 0.95
    assert len(warnings) == 1 and "slower than its full-precision sibling 'fp32'" in warnings[0]
    assert "fp32" not in found  # the full-precision variant is the yardstick, never flagged
    _, warnings = sibling_checks([fp32, int8], {"f32": _bench(1.0), "i8": _bench(0.6)}, CPU)["int8"]
    assert warnings == []


def test_variants_from_different_parents_are_not_siblings() -> None:
    fp32 = _outcome("fp32", {}, "pruned-model", "f32")
    int8 = _outcome("int8", {"quantize": "int8"}, "torch-model", "i8")
    assert sibling_checks([fp32, int8], {"f32": _bench(1.0), "i8": _bench(1.5)}, CPU) == {}


def test_a_failed_measurement_fails_the_run() -> None:
    ok = {"runtime": "onnxruntime", "device": "cpu", "batch_size": 1, "p50_ms": 1.0}
    bad = {"runtime": "torch", "device": "cpu", "batch_size": 1, "error": "measuring x failed (exit 1): boom"}
    results = {"reference": {"benchmarks": [ok]},
               "variants": [{"name": "a", "status": "ok", "within_budget": True, "benchmarks": [ok]}]}
    assert exit_code(results, strict=False) == 0 and failed_benchmarks(results) == []
    results["reference"]["benchmarks"].append(bad)
    assert exit_code(results, strict=False) == 1
    assert failed_benchmarks(results) == ["reference on torch:cpu batch 1: measuring x failed (exit 1): boom"]


def _paired(ratios: list[float]) -> dict:
    from compressor.measure.paired import PairedSettings, summarize_ratios

    return summarize_ratios(ratios, PairedSettings())


def test_paired_verdict_decides_the_warning_not_the_two_p50s() -> None:
    fp32 = _outcome("fp32", {}, "torch-model", "f32")
    int8 = _outcome("int8", {"quantize": "int8"}, "torch-model", "i8")
    benches = {"f32": _bench(1.0), "i8": _bench(1.5)}  # the single p50s say 0.67x ...
    noisy = {("f32", "i8", "litert:cpu", 1): _paired([0.6, 1.3, 0.9, 1.1, 0.7])}  # ... the rounds cannot tell
    checks, warnings = sibling_checks([fp32, int8], benches, CPU, noisy)["int8"]
    assert warnings == [] and checks[0]["verdict"] == "inconclusive" and checks[0]["interval"] == [0.6, 1.3]
    assert checks[0]["speedup"] == 0.9 and len(checks[0]["rounds"]) == 5 and checks[0]["cv"] > 0.2
    slower = {("f32", "i8", "litert:cpu", 1): _paired([0.8, 0.85, 0.9, 0.82, 0.88])}
    checks, warnings = sibling_checks([fp32, int8], {"f32": _bench(1.0), "i8": _bench(0.9)}, CPU, slower)["int8"]
    assert checks[0]["verdict"] == "slower" and len(warnings) == 1  # even though these two p50s say faster
    assert "0.85x (95% interval 0.80-0.90, 5 paired rounds)" in warnings[0]


def test_noise_guard_remeasures_a_spread_measurement_and_marks_it() -> None:
    from compressor.run.measurements import guarded

    spreads = iter([0.4, 0.3, 0.05])
    taken = []

    def take() -> dict:
        taken.append(1)
        return {"p50_ms": 1.0, "robust_cv": next(spreads)}

    entry = guarded(take, max_cv=0.1, max_remeasure=1)
    assert len(taken) == 2 and entry["remeasured"] == 1 and entry["unstable"] and entry["robust_cv"] == 0.3
    assert isinstance(entry["load"], float)
    entry = guarded(lambda: {"p50_ms": 1.0, "robust_cv": 0.02}, max_cv=0.1, max_remeasure=3)
    assert entry["remeasured"] == 0 and entry["unstable"] is False


def test_benchmark_round_settings_are_checked(tmp_path) -> None:
    import pytest

    from compressor.errors import ConfigError
    from compressor.run.pipeline import parse_pipeline
    from tests.conftest import pipeline_dict

    raw = pipeline_dict(tmp_path / "w.safetensors", {"fp32": ["convert.onnx"]})
    raw["benchmark"].update(rounds=6, max_rounds=4)
    with pytest.raises(ConfigError, match=r"max_rounds \(4\) must be at least rounds \(6\)"):
        parse_pipeline(raw, tmp_path)
    raw["benchmark"].update(rounds=5, max_rounds=15, min_effect=0)
    with pytest.raises(ConfigError, match="benchmark.min_effect"):
        parse_pipeline(raw, tmp_path)


def test_a_variant_is_checked_against_the_reference_where_both_ran() -> None:
    from compressor.run.speed import pairs_to_compare, reference_checks

    int8 = _outcome("int8", {"quantize": "int8"}, "torch-model", "i8")
    assert ("ref", "i8") in pairs_to_compare([int8])
    paired = {("ref", "i8", "litert:cpu", 1): _paired([2.0, 2.1, 1.9, 2.0, 2.2])}
    checks = reference_checks(int8, {"ref": _bench(2.0), "i8": _bench(1.0)}, paired)
    assert checks[0]["reference_p50_ms"] == 2.0 and checks[0]["verdict"] == "faster" and checks[0]["speedup"] == 2.0
    assert reference_checks(int8, {"i8": _bench(1.0)}, paired) == []  # the reference did not run there
