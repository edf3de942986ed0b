"""report.html without a browser: self-contained, escaped, rounded, and whole for old and new results."""
from __future__ import annotations

import json
import re

from compressor.report import write_reports
from compressor.report.html import page
from compressor.report.html.chart import chart_data, script_json
from tests.report.sample_results import HOSTILE, QUOTED, results

DATA = re.compile(r'<script type="application/json" id="chart-data">(.*?)</script>', re.S)


def visible(html: str) -> str:
    """The page's text as a reader sees it: no script, no style, no tags or attributes (sort keys)."""
    html = re.sub(r"<(script|style)\b.*?</\1>", "", html, flags=re.S)
    return re.sub(r"<[^>]+>", " ", html)


def test_page_is_self_contained() -> None:
    html = page(results())
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html, re.I)  # nothing fetched from a network
    assert "@import" not in html and "url(" not in html
    assert "<style>" in html and html.count("<script") == 2  # the inline chart data and the inline script


def test_a_name_cannot_end_the_script_or_add_markup() -> None:
    html = page(results())
    assert html.lower().count("</script") == 2  # the hostile name's own "</script>" appears nowhere raw
    assert HOSTILE not in html and QUOTED not in html
    assert "&lt;/script&gt;&lt;script&gt;window.__pwned" in html  # shown as text in the tables
    embedded = json.loads(DATA.search(html).group(1))
    assert embedded == json.loads(json.dumps(chart_data(results())))  # the data survives the escaping whole
    assert {p["name"] for p in embedded["points"]} >= {HOSTILE, QUOTED}


def test_script_json_escapes_what_could_close_a_script() -> None:
    value = {"name": "</script><!-- \u2028 & >"}
    text = script_json(value)
    assert not set(text) & {"<", ">", "&", "\u2028"}
    assert json.loads(text) == value


def test_rendered_not_markdown_and_rounded() -> None:
    text = visible(page(results()))
    assert "**" not in text and "| ---" not in text
    assert "1,430" in text and "1426.7161" not in text  # throughput to 3 significant digits
    assert "12.3" in text and "12.345678" not in text


def test_new_fields_are_shown() -> None:
    html = page(results())
    assert "2.25x [2.10–2.40], faster (cv 0.0500)" in html  # a paired check: interval and verdict
    assert '<span class="badge warn">inconclusive</span>' in html
    assert '<span class="badge warn">unstable</span>' in html and "re-measured 1x" in html
    for shown in ("ConvInteger", "DynamicQuantizeLinear", "Quantize/Dequantize: 4 nodes, 1.93 ms",
                  "float compute left: 0.520 ms", "operators that got slower", "Profile on onnxruntime:cpu batch 32"):
        assert shown in html
    assert "99.9%" in html and "node_conv2d" in html  # coverage
    assert "failed: no calibration data" in html and "No step finished." in html
    assert "tensorrt:gpu</code> skipped: no GPU" in html


def test_old_results_render_without_the_new_fields() -> None:
    old = results()
    for v in old["variants"]:
        for c in v.get("speed_checks", []):
            for key in ("rounds", "interval", "verdict", "cv", "min_effect"):
                c.pop(key)
        for b in v["benchmarks"]:
            for key in ("load", "unstable", "remeasured", "interval"):
                b.pop(key, None)
        for e in v["ledger"]:
            e.pop("profile", None)
    html = page(old)
    assert "2.25x</td>" in html and '<span class="badge good">faster' not in html
    assert "unstable</span>" not in html and "Profile difference" not in html and "re-measured" not in html


def test_pareto_front_per_view() -> None:
    data = chart_data(results())
    names = {p["id"]: p["name"] for p in data["points"]}
    # batch 1, all targets: the quantized variant is fastest, old-style beats fp32-onnx and the reference on
    # latency at the same accuracy; the unstable hostile one is slowest at that accuracy
    assert {names[i] for i in data["fronts"]["*|1"]} == {QUOTED, "old-style"}
    assert {names[i] for i in data["fronts"]["torch:cpu|1"]} == {"reference"}
    assert data["batches"] == [1, 32] and data["targets"] == ["litert:cpu", "onnxruntime:cpu", "torch:cpu"]
    hostile = next(p for p in data["points"] if p["name"] == HOSTILE and p["batch"] == 32)
    assert hostile["check"] == "step 2 vs its input: 0.155x [0.140–0.160], slower (cv 0.0300)"
    quoted = next(p for p in data["points"] if p["name"] == QUOTED and p["batch"] == 1)
    assert quoted["p50"] == "0.0690 ms [0.0660–0.0720 ms]"


def test_write_reports_writes_the_page(tmp_path) -> None:
    write_reports(results(), tmp_path)
    html = (tmp_path / "report.html").read_text()
    assert html.startswith("<!doctype html>") and 'id="pareto"' in html
    assert (tmp_path / "report.md").read_text().startswith("# tiny <pipeline>")  # report.md stays Markdown


def test_other_recorded_checks_and_unstable_figures_are_listed() -> None:
    res = results()
    res["variants"][0]["reference_checks"] = [{"target": "onnxruntime:cpu", "batch_size": 1, "reference_p50_ms": 0.41,
                                               "p50_ms": 0.155, "speedup": 2.645, "interval": [2.5, 2.8],
                                               "verdict": "faster"}]
    html = page(res)
    assert "<td data-v=\"reference\">reference</td>" in html and "2.65x [2.50–2.80], faster" in html
    assert "1 measurement stayed unstable after re-measuring" in html


def test_lower_is_better_metric_front() -> None:
    res = results()
    res["metric"] = {"name": "mse", "higher_is_better": False}
    data = chart_data(res)
    names = {p["id"]: p["name"] for p in data["points"]}
    # at batch 1 the quantized variant is fastest and (as mse) the lowest: it alone is on the front
    assert {names[i] for i in data["fronts"]["*|1"]} == {QUOTED}
