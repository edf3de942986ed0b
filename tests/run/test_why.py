"""A slower step's warning names operators and milliseconds from the profiles of its input and output.

The pair is a tiny conv net and its dynamic-int8 twin (tests/tiny_onnx.py); the measured p50s are given
(a step flagged slower), the profiles are real. Operator names and the shape of the ledger ``profile``
are asserted, never speeds.
"""
from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from compressor.artifact import Artifact
from compressor.code import TrustPolicy
from compressor.passes.registry import build_pass
from compressor.run.speed import sibling_checks, speed_checks
from compressor.run.why import MAC_DROP, Profiles, explain_slow, mac_shortfalls
from tests.tiny_onnx import FAST_PROFILE, SAMPLES, conv_pair

TINY = "tests.tiny_models:TinyCNN"

CPU = {"int8_dot_product": True}
CONTRACT = {"target", "batch_size", "profiler", "input_ms", "output_ms", "gained", "lost", "qdq", "float_ms"}
MS = re.compile(r"ConvInteger \+\d[\d.e-]* ms \(0 -> \d[\d.e-]* ms\)")


@pytest.fixture(scope="module")
def onnx_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Artifact, Artifact]:
    return conv_pair(tmp_path_factory.mktemp("pair"))


def profiles(tmp_path: Path, events: list | None = None) -> Profiles:
    from compressor.cache import Cache

    sink = (lambda kind, **info: events.append((kind, info))) if events is not None else (lambda kind, **info: None)
    return Profiles(Cache(tmp_path / "cache"), SAMPLES, 1, TrustPolicy(), "samples", {"cpu": "test"}, sink,
                    FAST_PROFILE)


def quantized(fp32: Any, int8: Any) -> SimpleNamespace:
    """A variant [convert.onnx, quantize.onnx.dynamic] whose second step made ``int8`` from ``fp32``."""
    return SimpleNamespace(name="dyn", passes=[build_pass("convert.onnx"), build_pass("quantize.onnx.dynamic")],
                           ledger=[{"pass": "convert.onnx", "report": {}},
                                   {"pass": "quantize.onnx.dynamic", "config": {}, "report": {}}],
                           chain=[SimpleNamespace(sha256="ref"), fp32, int8], artifact=int8)


def bench(p50: float, runtime: str = "onnxruntime", batch: int = 4) -> list[dict]:
    return [{"runtime": runtime, "device": "cpu", "batch_size": batch, "p50_ms": p50}]


def test_a_slower_step_names_operators_and_ms_and_fills_the_ledger(onnx_pair: tuple, tmp_path: Path) -> None:
    fp32, int8 = onnx_pair
    outcome, events = quantized(fp32, int8), []
    checks, warnings = speed_checks(outcome, {fp32.sha256: bench(1.0), int8.sha256: bench(3.0)}, CPU,
                                    profiles=profiles(tmp_path, events))
    assert checks[0]["speedup"] < 1 and len(warnings) == 1
    text = warnings[0]
    assert text.startswith("slower than its parent: step 2 (quantize.onnx.dynamic)")
    assert "from the onnxruntime profile at batch 4" in text and MS.search(text), text
    assert "likely reason" not in text  # the fixed sentence is gone where a profiler exists
    assert re.search(r"Quantize/Dequantize: \d+ nodes, \d[\d.e-]* ms; float compute left: \d[\d.e-]* ms", text)
    found = outcome.ledger[1]["profile"]
    assert CONTRACT <= set(found) and found["profiler"] == "onnxruntime"
    assert (found["target"], found["batch_size"], found["against"]) == ("onnxruntime:cpu", 4, "parent")
    assert "ConvInteger" in {r["op"] for r in found["lost"]}
    assert all(set(r) == {"op", "input_ms", "output_ms", "delta_ms"} for r in found["gained"] + found["lost"])
    assert all(r["delta_ms"] > 0 for r in found["lost"]) and all(r["delta_ms"] < 0 for r in found["gained"])
    assert found["qdq"]["count"] >= 1 and found["float_ms"] == 0.0
    assert "profile" not in outcome.ledger[0]  # only the flagged step was profiled
    assert sum(kind == "stage" for kind, _ in events) == 2  # its input and its output

    events.clear()  # the same check again: both profiles come from the cache
    speed_checks(quantized(fp32, int8), {fp32.sha256: bench(1.0), int8.sha256: bench(3.0)}, CPU,
                 profiles=profiles(tmp_path, events))
    assert events == []


def test_a_step_that_is_not_slower_is_not_profiled(onnx_pair: tuple, tmp_path: Path) -> None:
    fp32, int8 = onnx_pair
    outcome, events = quantized(fp32, int8), []
    _, warnings = speed_checks(outcome, {fp32.sha256: bench(1.0), int8.sha256: bench(0.5)}, CPU,
                               profiles=profiles(tmp_path, events))
    assert warnings == [] and events == [] and "profile" not in outcome.ledger[1]


def test_litert_has_no_profiler_and_the_warning_says_so(tmp_path: Path) -> None:
    def tflite(name: str, config: dict, final: str) -> SimpleNamespace:
        chain = [SimpleNamespace(sha256="ref"), SimpleNamespace(sha256="torch"),
                 SimpleNamespace(sha256=final, format="tflite")]
        return SimpleNamespace(name=name, passes=[build_pass("convert.onnx"), build_pass("convert.tflite", config)],
                               ledger=[{"pass": "x"}, {"pass": "convert.tflite", "config": config, "report": {}}],
                               chain=chain, artifact=chain[-1])

    fp32, int8 = tflite("fp32", {}, "f32"), tflite("int8", {"quantize": "int8"}, "i8")
    found = sibling_checks([fp32, int8], {"f32": bench(1.0, "litert"), "i8": bench(1.5, "litert")}, CPU,
                           profiles=profiles(tmp_path))
    _, warnings = found["int8"]
    assert len(warnings) == 1 and "no per-operator profiler for litert:cpu here; likely reason: " in warnings[0]
    assert "profile" not in int8.ledger[1]


class CannedProfiles:
    """Profiles without a worker: the input has a big float Conv, the output a smaller one (a pruned model)."""

    def __init__(self) -> None:
        self.taken: list[tuple[str, str, int]] = []

    def take(self, artifact: Any, target: str, batch: int) -> dict[str, Any]:
        self.taken.append((artifact.sha256, target, batch))
        ms = {"in": 4.0, "out": 3.5}[artifact.sha256]
        nodes = [{"node": "conv", "op": "aten::mkldnn_convolution", "kind": "float_compute", "ms": ms},
                 {"node": "pool", "op": "aten::max_pool2d_with_indices", "kind": "other", "ms": 1.0}]
        return {"profiler": "torch.profiler", "runs": 5, "total_ms": ms + 1.0, "nodes": nodes}


def pruned(macs_after: int) -> SimpleNamespace:
    chain = [SimpleNamespace(sha256="in"), SimpleNamespace(sha256="out")]
    return SimpleNamespace(name="slim", passes=[build_pass("prune.structured", {"sparsity": 0.5})],
                           ledger=[{"pass": "prune.structured",
                                    "report": {"macs_before": 1000, "macs_after": macs_after}}],
                           chain=chain, artifact=chain[-1])


def check(speedup: float, **extra: Any) -> dict[str, Any]:
    return {"pass": "prune.structured", "step": 1, "target": "torch:cpu", "batch_size": 32, "parent_p50_ms": 5.0,
            "p50_ms": round(5.0 / speedup, 4), "speedup": speedup, **extra}


def test_a_prune_step_that_gains_much_less_than_its_macs_is_explained() -> None:
    canned = CannedProfiles()
    outcome = pruned(500)  # half the MACs removed
    warnings = mac_shortfalls(canned, outcome, [check(1.04)], CPU)
    assert len(warnings) == 1 and canned.taken == [("in", "torch:cpu", 32), ("out", "torch:cpu", 32)]
    assert warnings[0].startswith("gains much less than its MAC reduction predicts: step 1 (prune.structured) "
                                  "removed 50% of the MACs but runs at 1.04x its input's speed on torch:cpu batch 32")
    assert "from the torch.profiler profile at batch 32" in warnings[0]
    assert "aten::mkldnn_convolution -0.5 ms (4 -> 3.5 ms)" in warnings[0]
    assert outcome.ledger[0]["profile"]["float_ms"] == 3.5


@pytest.mark.parametrize(("macs_after", "extra", "why"), [
    (int(1000 * (1 - MAC_DROP)) + 50, {"speedup": 1.04}, "fewer MACs removed than the threshold"),
    (500, {"speedup": 1.5}, "it gained enough"),
    (500, {"speedup": 1.04, "interval": [0.98, 1.2]}, "its interval reaches the predicted gain"),
    (500, {"speedup": 1.04, "verdict": "inconclusive"}, "the pair was too noisy to say"),
    (500, {"speedup": 0.8}, "the slower warning covers it"),
])
def test_no_mac_shortfall_warning_when(macs_after: int, extra: dict, why: str) -> None:
    canned = CannedProfiles()
    assert mac_shortfalls(canned, pruned(macs_after), [check(**extra)], CPU) == [], why
    assert canned.taken == []


def test_profiles_at_two_batches_keep_the_worst_as_profile() -> None:
    canned, outcome = CannedProfiles(), pruned(500)
    entry = outcome.ledger[0]
    for batch, speedup in ((1, 0.7), (32, 0.5), (1, 0.7)):  # the repeated check replaces its earlier profile
        explain_slow(canned, outcome.passes[0], entry, CPU, outcome.chain[0], outcome.chain[1],
                     {"runtime": "torch", "device": "cpu", "batch_size": batch}, speedup)
    assert entry["profile"]["batch_size"] == 32 and entry["profile"]["speedup"] == 0.5
    assert sorted(p["batch_size"] for p in entry["profiles"]) == [1, 32]


def test_without_profiles_the_fixed_sentence_stays() -> None:
    outcome = pruned(500)
    reason = explain_slow(None, outcome.passes[0], outcome.ledger[0], CPU, outcome.chain[0], outcome.chain[1],
                          {"runtime": "torch", "device": "cpu", "batch_size": 1}, 0.5)
    assert reason == "likely reason: " + outcome.passes[0].slow_reason(outcome.ledger[0], CPU)


def test_torch_profiles_explain_a_prune_step_that_gained_too_little(tmp_path: Path) -> None:
    """The real torch.profiler path: TinyCNN at width 8 and 4 (half the conv MACs), a check that gained 2%."""
    import torch

    from compressor.artifact import Signature, TensorSpec, content_sha256
    from compressor.formats import Format
    from compressor.frameworks._torch import save_module
    from tests.tiny_models import TinyCNN

    torch.manual_seed(0)
    sig = Signature((TensorSpec("x", ("batch", 1, 8, 8)),))
    wide, slim = (Artifact(Format.TORCH, f, sig, content_sha256(f)) for f in
                  (save_module(TinyCNN(c=c), TINY, {"c": c}, tmp_path / f"c{c}") for c in (8, 4)))
    outcome = pruned(500)
    outcome.chain = [wide, slim]
    source = replace(profiles(tmp_path), samples={"x": np.zeros((4, 1, 8, 8), np.float32)},
                     trust=TrustPolicy.of([TINY]))  # the worker may rebuild TinyCNN, nothing else
    warnings = mac_shortfalls(source, outcome, [check(1.02, batch_size=4)], CPU)
    assert len(warnings) == 1 and "from the torch.profiler profile at batch 4" in warnings[0]
    found = outcome.ledger[0]["profile"]
    assert found["profiler"] == "torch.profiler" and found["target"] == "torch:cpu"
    ops = {r["op"] for r in found["gained"] + found["lost"]}
    assert ops and all("::" in op for op in ops)  # aten / quantized operator names
    assert found["float_ms"] > 0  # the slim model's convolution and linear still run in float
    nodes = found["nodes"]["gained"] + found["nodes"]["lost"]
    assert all(re.fullmatch(r"\w+::\w+(\[[\dx]+\])?", n["node"]) for n in nodes)  # op and its input shape


def test_a_failed_profile_says_so_and_keeps_the_fixed_sentence() -> None:
    from compressor.errors import MeasurementError

    class Failing:
        def take(self, artifact: Any, target: str, batch: int) -> dict[str, Any]:
            raise MeasurementError(f"profiling {artifact.sha256} on {target} at batch {batch} failed (exit 1): boom")

    outcome = pruned(500)
    reason = explain_slow(Failing(), outcome.passes[0], outcome.ledger[0], CPU, outcome.chain[0], outcome.chain[1],
                          {"runtime": "torch", "device": "cpu", "batch_size": 1}, 0.5)
    assert reason == ("the per-operator profile failed (profiling in on torch:cpu at batch 1 failed (exit 1): boom); "
                      "likely reason: " + outcome.passes[0].slow_reason(outcome.ledger[0], CPU))
    assert "profile" not in outcome.ledger[0]
