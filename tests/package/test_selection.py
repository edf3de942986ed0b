"""Which variant a pipeline's ``package:`` section packages per target, and its settings' validation."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from compressor.errors import ConfigError
from compressor.package.per_target import choose
from compressor.run.pipeline import parse_pipeline

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "digits_cnn"


def _variant(name: str, fmt: str, within: bool, p50: dict[str, float], size: int = 100) -> dict:
    """A results.json variant; ``p50`` maps "runtime:device@batch" to its p50 in ms."""
    benches = []
    for key, ms in p50.items():
        target, batch = key.rsplit("@", 1)
        runtime, device = target.split(":")
        benches.append({"runtime": runtime, "device": device, "batch_size": int(batch), "p50_ms": ms})
    return {"name": name, "status": "ok", "within_budget": within, "benchmarks": benches,
            "artifact": {"format": fmt, "size_bytes": size}}


def test_the_fastest_within_budget_at_the_smallest_batch_is_chosen() -> None:
    results = {"variants": [
        _variant("slow", "onnx", True, {"onnxruntime:cpu@1": 0.9, "onnxruntime:cpu@32": 1.0}),
        _variant("fast", "onnx", True, {"onnxruntime:cpu@1": 0.5, "onnxruntime:cpu@32": 9.0}),
        _variant("fastest-but-over-budget", "onnx", False, {"onnxruntime:cpu@1": 0.1}),
        _variant("tflite", "tflite", True, {"litert:cpu@1": 0.2}),
    ]}
    best, why = choose(results, "onnxruntime:cpu")
    assert best["name"] == "fast" and "p50 0.5 ms at batch 1" in why
    assert choose(results, "litert:cpu")[0]["name"] == "tflite"
    assert choose(results, "torch:cpu") == (None, "no variant in a format torch runs (none) for torch:cpu")


def test_without_measurements_the_smallest_file_is_chosen_and_said() -> None:
    results = {"variants": [_variant("big", "onnx", True, {}, size=9), _variant("small", "onnx", True, {}, size=3)]}
    best, why = choose(results, "onnxruntime:cpu")
    assert best["name"] == "small" and "no latency measured" in why


def test_no_variant_within_budget_is_said() -> None:
    results = {"variants": [_variant("over", "onnx", False, {"onnxruntime:cpu@1": 0.1})]}
    assert choose(results, "onnxruntime:cpu") == (None, "no variant within budget for onnxruntime:cpu")


@pytest.mark.parametrize("package, message", [
    ({"targets": ["litert:gpu"]}, "package.targets names 'litert:gpu'; packages are built and verified for"),
    ({"variants": {"litert:cpu": "nope"}}, "package.variants.litert:cpu names variant 'nope'"),
    ({"zipp": True}, "unknown key 'package.zipp'. Did you mean 'zip'?"),
    ({"version": "../1"}, "package.version"),
])
def test_bad_package_settings_are_one_line_errors(package: dict, message: str) -> None:
    raw = yaml.safe_load((SAMPLE / "pipeline.yaml").read_text())
    raw["package"] = package
    with pytest.raises(ConfigError) as info:
        parse_pipeline(raw, SAMPLE)
    assert message in str(info.value) and "\n" not in str(info.value)
