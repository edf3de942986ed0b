"""report.html in a real browser (headless Chromium): the chart renders, the rows match results.json,
labels do not overlap, hovering shows a point's figures, tables sort, drill-downs open, no name runs as
script; a screenshot is saved for a person to look at.

`make test` installs Chromium (Debian package `chromium`) and sets COMPRESSOR_REQUIRE_CHROMIUM=1, so
there this test fails instead of skipping when no browser can be found.
"""
from __future__ import annotations

import json
import os
import struct

import pytest

from compressor.report import write_reports
from tests.report.browser import NAMES, Browser, find_chromium
from tests.report.sample_results import HOSTILE, QUOTED, results

CHROMIUM = find_chromium()
if CHROMIUM is None:
    reason = (f"no Chromium on PATH (looked for {', '.join(NAMES)}); "
              "install the Debian package 'chromium' (make test does)")
    if os.environ.get("COMPRESSOR_REQUIRE_CHROMIUM"):
        raise RuntimeError(reason)
    pytest.skip(reason, allow_module_level=True)

BOXES = """(sel => [...document.querySelectorAll(sel)].map(n => { const b = n.getBBox();
            return [b.x, b.y, b.width, b.height]; }))"""


def overlap(a: list[float], b: list[float]) -> bool:
    return a[0] < b[0] + b[2] - 0.5 and b[0] < a[0] + a[2] - 0.5 and a[1] < b[1] + b[3] - 0.5 and b[1] < a[1] + a[3] - 0.5


def expected_points(res: dict, batch: int, target: str | None = None) -> int:
    rows = [b for item in [res["reference"], *res["variants"]] for b in item["benchmarks"]
            if b["batch_size"] == batch and (target is None or f"{b['runtime']}:{b['device']}" == target)]
    return len(rows)


def check_view(browser: Browser, res: dict, batch: int, target: str | None) -> None:
    """Switch the chart to a view; its points, front and labels are drawn, and no label overlaps anything."""
    browser.evaluate(f"""(() => {{ const t = document.getElementById('target'), b = document.getElementById('batch');
        t.value = {json.dumps(target or '*')}; b.value = '{batch}'; b.dispatchEvent(new Event('change')); }})()""")
    svg = browser.evaluate("[...document.querySelectorAll('#pareto g.pt')].length")
    assert svg == expected_points(res, batch, target)
    assert int(browser.evaluate("document.getElementById('pareto').getAttribute('data-front')")) >= 1
    labels = browser.evaluate(BOXES + "('#pareto text.label')")
    marks = browser.evaluate(BOXES + "('#pareto g.pt')")
    assert labels, "no label was placed"
    assert not [(a, b) for i, a in enumerate(labels) for b in labels[i + 1:] if overlap(a, b)]
    assert not [(a, m) for a in labels for m in marks if overlap(a, m)]


def test_report_in_chromium(tmp_path) -> None:
    res = results()
    write_reports(res, tmp_path)
    with Browser(CHROMIUM) as browser:
        browser.open(tmp_path / "report.html")
        assert browser.evaluate("document.getElementById('pareto').getAttribute('data-rendered')") == "1"
        assert browser.evaluate("typeof window.__pwned") == "undefined"  # the hostile name stayed text

        names = browser.evaluate("[...document.querySelectorAll('#variants tbody tr')].map(r => r.cells[0].textContent)")
        assert names == [v["name"] for v in res["variants"]]
        models = browser.evaluate("[...document.querySelectorAll('#latency tbody tr')].map(r => r.cells[0].textContent)")
        assert models == [name for name, item in [("reference", res["reference"])] + [(v["name"], v) for v in res["variants"]]
                          for _ in item["benchmarks"]]

        for batch, target in ((32, None), (1, "onnxruntime:cpu"), (1, None)):
            check_view(browser, res, batch, target)

        # hovering a point shows its name, passes, metric, size and p50 with its interval
        where = browser.evaluate(f"""(() => {{ const g = [...document.querySelectorAll('#pareto g.pt')]
            .find(g => g.getAttribute('aria-label') === {json.dumps(QUOTED)}); const r = g.getBoundingClientRect();
            return [r.x + r.width / 2, r.y + r.height / 2]; }})()""")
        browser.hover(*where)
        tip = browser.evaluate("(() => { const t = document.getElementById('tip'); return t.hidden ? null : t.textContent; })()")
        assert tip is not None and QUOTED in tip
        for shown in ("convert.onnx → quantize.onnx.static", "accuracy 0.9680", "0.0690 ms [0.0660–0.0720 ms]",
                      "2.25x [2.10–2.40], faster"):
            assert shown in tip
        shot = browser.screenshot(tmp_path / "report.png")

        # a header sorts its table by the raw figures, both ways
        column = "[...document.querySelectorAll('#latency tbody tr')].map(r => Number(r.cells[3].dataset.v))"
        browser.evaluate("document.querySelectorAll('#latency thead button')[3].click()")
        ascending = browser.evaluate(column)
        assert ascending == sorted(ascending) and len(ascending) == len(models)
        browser.evaluate("document.querySelectorAll('#latency thead button')[3].click()")
        assert browser.evaluate(column) == sorted(ascending, reverse=True)

        # a variant's name opens its drill-down
        index = [v["name"] for v in res["variants"]].index(HOSTILE)
        browser.evaluate(f"document.querySelector('#variants a[href=\"#v-{index}\"]').click()")
        assert browser.evaluate(f"document.getElementById('v-{index}').open") is True
        assert "ConvInteger" in browser.evaluate(f"document.getElementById('v-{index}').innerText")

    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    width, height = struct.unpack(">II", data[16:24])
    assert width >= 800 and height >= 1000


def test_crowded_chart_leaves_labels_out_rather_than_overlap(tmp_path) -> None:
    res = results()
    base = res["variants"][0]
    for i in range(16):  # sixteen models within a few per cent of each other's latency and accuracy
        extra = json.loads(json.dumps(base))
        extra["name"] = f"crowded-variant-{i}"
        for b in extra["benchmarks"]:
            b["p50_ms"] *= 1 + 0.01 * i
            b["metric"] -= 0.0001 * (i % 4)
        res["variants"].append(extra)
    write_reports(res, tmp_path)
    with Browser(CHROMIUM) as browser:
        browser.open(tmp_path / "report.html")
        check_view(browser, res, 1, None)
        shown = browser.evaluate("document.querySelectorAll('#pareto text.label').length")
        note = browser.evaluate("document.getElementById('chart-note').textContent")
        assert shown < expected_points(res, 1) and f"{expected_points(res, 1) - shown} labels left out" in note
        browser.screenshot(tmp_path / "crowded.png", full_page=False)
