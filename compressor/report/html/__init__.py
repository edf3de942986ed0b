"""report.html: one self-contained page (no network: CSS, JS and the chart's SVG are inline).

The tables and drill-downs are rendered here, escaped and rounded like every report; the browser adds
sorting, opening a variant's drill-down, and the Pareto chart, drawn from the chart data embedded as
JSON (escaped so that no name can end its <script> element). The page reads without JavaScript too:
only the chart needs it.
"""
from __future__ import annotations

from html import escape
from importlib.resources import files
from typing import Any

from compressor.report import _data_lines
from compressor.report.figures import kib, significant
from compressor.report.html.chart import chart_data, finite, script_json
from compressor.report.html.drill import drill_downs
from compressor.report.html.tables import checks_table, latency_table, variants_table


def _asset(name: str) -> str:
    return files(__name__).joinpath(name).read_text(encoding="utf-8")


def _header(results: dict[str, Any]) -> str:
    ref, metric = results["reference"], results["metric"]["name"]
    value = significant(ref["metric"], 4) if finite(ref.get("metric")) else "—"
    line = (f"Reference: {ref.get('format', '?')} {ref.get('source', '')}, {metric} {value}, "
            f"{kib(ref.get('size_bytes')) if finite(ref.get('size_bytes')) else 'size unknown'}. "
            f"Budget: {metric} may drop by at most {(results.get('budget') or {}).get('max_drop', '—')}.")
    data = "".join(f"<p>{escape(d)}</p>" for d in _data_lines(results) if d)
    return f"<h1>{escape(str(results['pipeline']))}</h1><p>{escape(line)}</p>{data}"


NAV = (("chart", "Pareto chart"), ("variants", "Variants"), ("warnings", "Warnings"), ("latency", "Latency"),
       ("checks", "Speed checks"), ("ledger", "Drill-down"), ("environment", "Environment"))


def _section(anchor: str, title: str, body: str) -> str:
    return f'<section id="s-{anchor}"><h2>{escape(title)}</h2>{body}</section>'


def _chart() -> str:
    return ('<div class="controls"><label>target <select id="target"></select></label>'
            '<label>batch size <select id="batch"></select></label><span id="legend" class="legend"></span></div>'
            '<div id="chart" class="chart"><svg id="pareto" role="img" aria-label="metric against p50 latency">'
            '</svg><div id="tip" class="tip" hidden></div></div><p id="chart-note" class="muted"></p>'
            "<noscript><p>The chart needs JavaScript; the tables below hold the same figures.</p></noscript>")


def _warnings(results: dict[str, Any]) -> str:
    items = [escape(str(w)) for w in results.get("warnings") or []]  # the run's own
    items += [f'<a href="#v-{i}" class="drill"><strong>{escape(v["name"])}</strong></a>: {escape(str(w))}'
              for i, v in enumerate(results["variants"]) for w in v.get("warnings") or []]
    items += [f"target <code>{escape(str(s.get('target')))}</code> skipped: {escape(str(s.get('reason')))}"
              for s in results.get("skipped_targets") or []]
    unstable = sum(b.get("unstable") is True for item in [results["reference"], *results["variants"]]
                   for b in item.get("benchmarks") or [])
    if unstable:
        items.append(f"{unstable} measurement{'s' if unstable > 1 else ''} stayed unstable after re-measuring "
                     f"(marked in the latency table and drawn with a dashed outline): read those figures with care")
    if not items:
        return "<p>None.</p>"
    return '<ul class="warnings">' + "".join(f"<li>{i}</li>" for i in items) + "</ul>"


def _environment(results: dict[str, Any]) -> str:
    env = results.get("environment") or {}
    cpu = env.get("cpu") or {}
    lines = [f"CPU: {cpu.get('model', '?')} ({env.get('cores', '?')} cores); ISA: {', '.join(cpu.get('isa') or [])}",
             f"load average: {env.get('load_average', '?')}", f"Python {env.get('python', '?')} on {env.get('platform', '?')}",
             ", ".join(f"{k} {v}" for k, v in (env.get("packages") or {}).items())]
    return "<ul>" + "".join(f"<li>{escape(line)}</li>" for line in lines if line) + "</ul>"


def page(results: dict[str, Any]) -> str:
    """The whole report.html for ``results`` (a results.json dict), as one string."""
    checks = checks_table(results)
    sections = [
        _section("chart", "Pareto chart: metric against latency", _chart()),
        _section("variants", "Variants", variants_table(results)),
        _section("warnings", "Warnings", _warnings(results)),
        _section("latency", "Latency", latency_table(results)),
        _section("checks", "Speed checks", checks or "<p>No speed check was recorded.</p>"),
        _section("ledger", "Drill-down per variant",
                 '<p><button type="button" id="open-all">open / close all</button> Each variant: its ledger step by '
                 "step, coverage, speed checks and profile difference.</p>" + drill_downs(results)),
        _section("environment", "Environment", _environment(results)),
    ]
    nav = "<nav>" + "".join(f'<a href="#s-{a}">{escape(t)}</a>' for a, t in NAV) + "</nav>"
    title = escape(f"{results['pipeline']} — compressor report")
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title>'
            f"<style>{_asset('report.css')}</style></head><body><header>{_header(results)}{nav}</header>"
            f"<main>{''.join(sections)}</main>"
            f'<script type="application/json" id="chart-data">{script_json(chart_data(results))}</script>'
            f"<script>{_asset('report.js')}</script></body></html>")
