"""A small results.json built in code, carrying issue 10's fields where a run records them (paired
checks with rounds, intervals and verdicts; CV, load and unstable flags; a profile difference in the
ledger) next to a variant in today's shape, a failed variant, and names that are hostile to HTML."""
from __future__ import annotations

from typing import Any

HOSTILE = "</script><script>window.__pwned = 1</script>"
QUOTED = 'int8 <b>&"q\'s'


def bench(runtime: str, batch: int, p50: float, metric: float, **extra: Any) -> dict[str, Any]:
    """One benchmark row (the figures are made up; only their order matters to the tests)."""
    return {"runtime": runtime, "device": "cpu", "batch_size": batch, "threads": 1, "p50_ms": p50,
            "p90_ms": p50 * 1.2, "p99_ms": p50 * 1.5, "mean_ms": p50 * 1.05, "cv": 0.05, "throughput_per_s": 1426.7161,
            "cold_start_ms": 12.345678, "peak_rss_mb": 101.234, "cached": False, "metric": metric, **extra}


def paired(step: int, pass_name: str, batch: int, parent: float, p50: float, verdict: str,
           interval: list[float], cv: float) -> dict[str, Any]:
    """A speed check measured as paired rounds (issue 10's contract)."""
    speedup = parent / p50
    return {"pass": pass_name, "step": step, "target": "onnxruntime:cpu", "batch_size": batch, "parent_p50_ms": parent,
            "p50_ms": p50, "speedup": round(speedup, 3), "rounds": [speedup * f for f in (0.95, 1.0, 1.02, 0.98, 1.05)],
            "interval": interval, "verdict": verdict, "cv": cv, "min_effect": 0.05}


def ledger_entry(pass_name: str, fmt_in: str, fmt_out: str, metric: float, **extra: Any) -> dict[str, Any]:
    """One ledger step."""
    return {"pass": pass_name, "config": {}, "format_in": fmt_in, "format_out": fmt_out, "artifact": "0" * 16,
            "size_bytes": 432_048, "seconds": 0.0234, "cache_hit": False, "report": {}, "parity": None,
            "metric": metric, "metric_drop": round(0.97 - metric, 4), "within_budget": True, "benchmarks": [], **extra}


PROFILE = {"target": "onnxruntime:cpu", "batch_size": 32, "profiler": "onnxruntime", "input_ms": 2.61, "output_ms": 17.2,
           "gained": [{"op": "Gemm", "input_ms": 0.41, "output_ms": 0.0, "delta_ms": -0.41}],
           "lost": [{"op": "ConvInteger", "input_ms": 0.0, "output_ms": 12.87, "delta_ms": 12.87},
                    {"op": "DynamicQuantizeLinear", "input_ms": 0.0, "output_ms": 1.93, "delta_ms": 1.93}],
           "qdq": {"count": 4, "ms": 1.93}, "float_ms": 0.52}


def variant(name: str, passes: list[str], metric: float, size: int, benchmarks: list[dict], ledger: list[dict],
            **extra: Any) -> dict[str, Any]:
    """A finished variant."""
    return {"name": name, "passes": passes, "status": "ok", "metric": metric, "metric_drop": round(0.97 - metric, 4),
            "within_budget": True, "artifact": {"format": "onnx", "path": f"artifacts/{len(passes)}.onnx",
                                                "size_bytes": size, "gzip_bytes": size // 2, "sha256": "0" * 64},
            "benchmarks": benchmarks, "ledger": ledger, "speed_checks": [], "warnings": [], **extra}


def results() -> dict[str, Any]:
    """The whole results dict: a reference, four finished variants on two targets and a failed one."""
    ort = "onnxruntime"
    convert = ledger_entry("convert.onnx", "torch", "onnx", 0.97, parity={"cosine": 1.0, "max_abs_error": 3.3e-06})
    static = ledger_entry("quantize.onnx.static", "onnx", "onnx", 0.968, report={"calibration_samples": 256},
                          coverage={"int8_share": 0.9993, "int8_mac_share": 0.9468, "macs": 4_241_152,
                                    "float_compute": [{"node": "node_conv2d", "op_type": "Conv", "macs": 225_792}],
                                    "float_op_types": {"Conv": 1, "Relu": 1}, "float_compute_nodes": ["node_conv2d (Conv)"]})
    dynamic = ledger_entry("quantize.onnx.dynamic", "onnx", "onnx", 0.97, profile=PROFILE)
    slow = ("slower than its parent: step 2 (quantize.onnx.dynamic) runs at 0.153x its input's speed on "
            "onnxruntime:cpu batch 32; the profile: ConvInteger 12.9 ms, DynamicQuantizeLinear 1.93 ms")
    variants = [
        variant("fp32-onnx", ["convert.onnx"], 0.97, 1_690_000, [bench(ort, 1, 0.155, 0.97, load=0.4, remeasured=0),
                                                                 bench(ort, 32, 2.66, 0.97, load=0.4)], [convert]),
        variant(QUOTED, ["convert.onnx", "quantize.onnx.static"], 0.968, 440_000,
                [bench(ort, 1, 0.069, 0.968, interval=[0.066, 0.072]), bench(ort, 32, 1.58, 0.968)], [convert, static],
                speed_checks=[paired(2, "quantize.onnx.static", 1, 0.155, 0.069, "faster", [2.1, 2.4], 0.05),
                              paired(2, "quantize.onnx.static", 32, 2.66, 1.58, "inconclusive", [0.8, 1.6], 0.4)]),
        variant(HOSTILE, ["convert.onnx", "quantize.onnx.dynamic"], 0.97, 432_048,
                [bench(ort, 1, 1.02, 0.97, cv=0.31, robust_cv=0.18, load=2.4, unstable=True, remeasured=1), bench(ort, 32, 17.2, 0.97)],
                [convert, dynamic], warnings=[slow],
                speed_checks=[paired(2, "quantize.onnx.dynamic", 32, 2.66, 17.2, "slower", [0.14, 0.16], 0.03)]),
        variant("old-style", ["convert.tflite"], 0.97, 1_650_000,
                [bench("litert", 1, 0.147, 0.97), bench("litert", 32, 4.98, 0.97)],
                [ledger_entry("convert.tflite", "torch", "tflite", 0.97)],
                sibling_checks=[{"sibling": "fp32-onnx", "target": "litert:cpu", "batch_size": 1,
                                 "sibling_p50_ms": 0.155, "p50_ms": 0.147, "speedup": 1.054}]),
        {"name": "broken", "passes": ["quantize.onnx.static"], "status": "failed", "error": "no calibration data",
         "artifact": None, "metric": None, "metric_drop": None, "within_budget": False, "benchmarks": [], "ledger": []},
    ]
    return {"schema": 1, "pipeline": "tiny <pipeline>", "budget": {"max_drop": 0.01},
            "metric": {"name": "accuracy", "higher_is_better": True, "outputs": ["output"]},
            "data": {"evaluation_samples": 450, "calibration_samples": 256},
            "reference": {"format": "torch", "source": "tests.tiny:Net", "metric": 0.97, "size_bytes": 1_700_000,
                          "benchmarks": [bench("torch", 1, 0.41, 0.97), bench("torch", 32, 11.6, 0.97)]},
            "variants": variants, "warnings": ["cache entry 1234 failed its check and was rebuilt"],
            "skipped_targets": [{"target": "tensorrt:gpu", "reason": "no GPU"}],
            "environment": {"cpu": {"model": "x", "isa": ["avx2"]}, "cores": 2, "load_average": [0.1, 0.2, 0.3],
                            "python": "3.11", "platform": "linux", "packages": {"onnxruntime": "1"}}}
