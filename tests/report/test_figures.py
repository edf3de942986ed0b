"""Reports round figures to significant digits; results.json keeps them whole."""
from __future__ import annotations

import json

from compressor.report import markdown, write_reports
from compressor.report.figures import kib, ratio, significant


def test_significant_digits_and_separators() -> None:
    assert significant(1426.7161) == "1,430"
    assert significant(0.0999) == "0.0999"
    assert significant(0.09994) == "0.0999"
    assert significant(2.4373) == "2.44"
    assert significant(9.996) == "10.0"  # the rounding carries into the next power of ten
    assert significant(100.0) == "100"
    assert significant(-0.012345) == "-0.0123"
    assert significant(0.0) == "0"
    assert significant(12345) == "12,345"  # an int is a count: whole, separated
    assert significant(None) == "—"
    assert (kib(2_500_000), kib(None), ratio(2.4373)) == ("2,440 KiB", "—", "2.44x")


def results() -> dict:
    bench = {"runtime": "onnxruntime", "device": "cpu", "batch_size": 1, "p50_ms": 0.09994, "p90_ms": 0.1234567,
             "cv": 0.0512345, "throughput_per_s": 1426.7161, "cold_start_ms": 12.345678, "peak_rss_mb": 101.234,
             "metric": 0.9861}
    return {
        "schema": 1, "pipeline": "p", "budget": {"max_drop": 0.01}, "metric": {"name": "accuracy", "higher_is_better": True},
        "reference": {"format": "onnx", "source": "m.onnx", "metric": 0.9861, "size_bytes": 123_456, "benchmarks": [bench]},
        "variants": [{"name": "int8", "passes": ["quantize.onnx.static"], "status": "ok", "metric": 0.9861,
                      "metric_drop": 0.0, "within_budget": True, "ledger": [], "benchmarks": [dict(bench, p50_ms=0.04101)],
                      "speed_checks": [{"step": 1, "pass": "quantize.onnx.static", "target": "onnxruntime:cpu",
                                        "batch_size": 1, "parent_p50_ms": 0.09994, "p50_ms": 0.04101,
                                        "speedup": 2.4373}]}],
        "environment": {"cpu": {"model": "x", "isa": []}, "cores": 2, "load_average": 0.1, "python": "3", "platform": "l",
                        "packages": {}},
    }


def test_report_shows_rounded_figures(tmp_path) -> None:
    md = markdown(results())
    assert "| reference | onnxruntime:cpu | 1 | 0.0999 | 0.123 | 0.0512 | 1,430 | 12.3 | 101 | 0.9861 |" in md
    assert "| 0.0999 | 0.0410 | 2.44x |" in md and "121 KiB" in md
    assert "1426.7161" not in md and "0.0999 ms" not in md
    write_reports(results(), tmp_path)
    assert "1,430" in (tmp_path / "report.html").read_text()
    (tmp_path / "results.json").write_text(json.dumps(results()))  # the results keep full precision
    assert json.loads((tmp_path / "results.json").read_text())["reference"]["benchmarks"][0]["throughput_per_s"] == 1426.7161
