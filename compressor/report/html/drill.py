"""A drill-down per variant: its ledger step by step, with each step's facts, int8 coverage, speed
checks (verdicts and intervals), the per-operator profile difference and the variant's warnings."""
from __future__ import annotations

import json
from html import escape
from typing import Any

from compressor.report import FACTS, NOTES, _step_facts
from compressor.report.figures import kib, significant
from compressor.report.html.chart import finite
from compressor.report.html.tables import CHECK_HEAD, badge, check_row, html_cell, num, other_checks, size, table, txt

PERCENT_KEYS = ("int8_share", "int8_mac_share", "int8_weight_share")


def rounded(value: Any) -> Any:
    """A pass report's value with every float to 3 significant digits, for showing as compact JSON."""
    if isinstance(value, float):
        return float(significant(value).replace(",", "")) if finite(value) else str(value)
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v) for v in value]
    return value


def _value(key: str, value: Any) -> str:
    if key in PERCENT_KEYS and finite(value):
        return escape(f"{significant(100 * value)}%")
    if finite(value):
        return escape(significant(value))
    if isinstance(value, str):
        return escape(value)
    return f"<code>{escape(json.dumps(rounded(value), ensure_ascii=False))}</code>"


def facts_list(facts: dict[str, Any], skip: tuple[str, ...] = ()) -> str:
    """A pass's report (or a coverage record) as a definition list; empty values are left out."""
    items = [f"<dt>{escape(k.replace('_', ' '))}</dt><dd>{_value(k, v)}</dd>"
             for k, v in facts.items() if k not in skip and v not in (None, [], {}, "")]
    return f'<dl class="facts">{"".join(items)}</dl>' if items else ""


def coverage_block(coverage: dict[str, Any]) -> str:
    """Which compute runs in int8 and what stayed float, by node and op type."""
    if not coverage:
        return ""
    rows = [[txt(f.get("node")), txt(f.get("op_type")), num(f.get("macs"))] for f in coverage.get("float_compute") or []]
    nodes = table(["float node", "op type", "MACs"], rows, "", "compute left in float") if rows else ""
    ops = coverage.get("float_op_types") or {}
    op_text = ", ".join(f"{escape(str(k))} ×{escape(str(n))}" for k, n in ops.items())
    ops_line = f"<p>Float ops: {op_text}</p>" if op_text else ""
    shown = facts_list(coverage, skip=("float_compute", "float_op_types", "float_compute_nodes"))
    return f'<div class="block"><h5>Coverage</h5>{shown}{ops_line}{nodes}</div>'


def _op_rows(ops: list[dict[str, Any]], scale: float) -> list[list]:
    rows = []
    for op in ops:
        delta = op.get("delta_ms")
        width = min(100.0, 100 * abs(delta) / scale) if finite(delta) and scale else 0
        kind = "lost" if finite(delta) and delta > 0 else "gained"
        bar = f'<span class="barbox"><span class="bar {kind}" style="width:{width:.0f}%"></span></span>'
        shown = escape(significant(delta)) if finite(delta) else "—"
        rows.append([txt(op.get("op")), num(op.get("input_ms")), num(op.get("output_ms")),
                     html_cell(f"{shown} {bar}", delta if finite(delta) else None)])
    return rows


def profile_block(profile: dict[str, Any]) -> str:
    """The runtime's per-operator profile of the step's input and output: what gained, what lost."""
    if not isinstance(profile, dict) or not profile:
        return ""
    head = (f"Profile on {profile.get('target', '?')} batch {profile.get('batch_size', '?')} "
            f"({profile.get('profiler', 'profiler')}): operator time {significant(profile.get('input_ms'))} ms "
            f"in the input, {significant(profile.get('output_ms'))} ms in the output.")
    ops = [*(profile.get("gained") or []), *(profile.get("lost") or [])]
    scale = max((abs(o["delta_ms"]) for o in ops if finite(o.get("delta_ms"))), default=0.0)
    parts = [f"<p>{escape(head)}</p>"]
    for key, title in (("lost", "operators that got slower"), ("gained", "operators that got faster")):
        rows = _op_rows(profile.get(key) or [], scale)
        if rows:
            parts.append(table(["op", "input ms", "output ms", "Δ ms"], rows, "", title))
    qdq = profile.get("qdq") or {}
    extra = []
    if qdq:
        extra.append(f"Quantize/Dequantize: {significant(qdq.get('count'))} nodes, {significant(qdq.get('ms'))} ms")
    if finite(profile.get("float_ms")):
        extra.append(f"float compute left: {significant(profile['float_ms'])} ms")
    if extra:
        parts.append(f"<p>{escape('; '.join(extra))}.</p>")
    return f'<div class="block profile"><h5>Profile difference</h5>{"".join(parts)}</div>'


def _latency(entry: dict[str, Any]) -> str:
    found = [b for b in entry.get("benchmarks") or [] if finite(b.get("p50_ms"))]
    return "; ".join(f"{b['runtime']}:{b['device']} b{b['batch_size']} {significant(b['p50_ms'])}" for b in found) or "—"


def ledger_table(variant: dict[str, Any], metric: str) -> str:
    """One row per step: pass, config, formats, size, metric, p50s, parity, time, cache."""
    rows = []
    for i, e in enumerate(variant.get("ledger") or []):
        parity = (e.get("parity") or {}).get("max_abs_error")
        config = json.dumps(e.get("config"), ensure_ascii=False) if e.get("config") else ""
        rows.append([num(i + 1), txt(e.get("pass")), html_cell(f"<code>{escape(config)}</code>" if config else "", config),
                     txt(f"{e.get('format_in')}→{e.get('format_out')}"), size(e.get("size_bytes")),
                     num(e.get("metric"), 4), num(e.get("metric_drop")), txt(_latency(e)), num(parity),
                     num(e.get("seconds")), txt("hit" if e.get("cache_hit") else "run")])
    head = ["#", "pass", "config", "formats", "size", metric, "drop", "p50 ms", "parity max err", "seconds", "cache"]
    return table(head, rows, "", "the ledger: one row per pass")


def step_block(variant: dict[str, Any], i: int, entry: dict[str, Any]) -> str:
    """What one step reported, its coverage, its speed checks and its profile difference."""
    checks = [c for c in variant.get("speed_checks") or [] if c.get("step") == i + 1]
    rows = [check_row(txt(variant["name"]), c, "its input", c.get("parent_p50_ms")) for c in checks]
    facts = _step_facts(entry)
    said = tuple(key for label in FACTS for key in label[1:]) + NOTES  # already in the facts line
    parts = [f"<p>{escape(facts)}</p>" if facts else "", facts_list(entry.get("report") or {}, skip=said),
             coverage_block(entry.get("coverage") or {}),
             table(CHECK_HEAD, rows, "", "speed checks of this step") if rows else "",
             profile_block(entry.get("profile") or {})]
    body = "".join(parts)
    if not body:
        return ""
    return f'<section class="step"><h4>step {i + 1}: {escape(str(entry.get("pass")))}</h4>{body}</section>'


def summary_line(variant: dict[str, Any], metric: str) -> str:
    """The <summary> of a variant's drill-down: name, passes, metric, size, budget, warnings."""
    a = variant.get("artifact") or {}
    shown = significant(variant["metric"], 4) if finite(variant.get("metric")) else "—"
    bits = [f"{metric} {shown}", kib(a.get("size_bytes")) if finite(a.get("size_bytes")) else "no artifact"]
    warn = len(variant.get("warnings") or [])
    flags = badge("in budget", "good") if variant.get("within_budget") else badge("over budget", "bad")
    if variant.get("status") != "ok":
        flags += " " + badge(str(variant.get("status")), "bad")
    if warn:
        flags += " " + badge(f"{warn} warning{'s' if warn > 1 else ''}", "warn")
    return (f'<summary><strong>{escape(variant["name"])}</strong> <span class="muted">'
            f'{escape(" → ".join(variant.get("passes") or []))} · {escape(" · ".join(bits))}</span> {flags}</summary>')


def variant_details(index: int, variant: dict[str, Any], metric: str) -> str:
    """The whole drill-down of one variant, closed until a reader opens it."""
    parts = [summary_line(variant, metric)]
    if variant.get("error"):
        parts.append(f'<p class="error">failed: {escape(str(variant["error"]))}</p>')
    warnings = variant.get("warnings") or []
    if warnings:
        parts.append('<ul class="warnings">' + "".join(f"<li>{escape(str(w))}</li>" for w in warnings) + "</ul>")
    if variant.get("ledger"):
        parts.append(ledger_table(variant, metric))
    else:
        parts.append("<p>No step finished.</p>")
    parts += [step_block(variant, i, e) for i, e in enumerate(variant.get("ledger") or [])]
    others = [check_row(txt(variant["name"]), c, f"sibling {c.get('sibling')}", c.get("sibling_p50_ms"))
              for c in variant.get("sibling_checks") or []]
    others += [check_row(txt(variant["name"]), c, against, theirs) for c, against, theirs in other_checks(variant)]
    if others:
        parts.append(table(CHECK_HEAD, others, "", "against its full-precision sibling and other comparisons"))
    return f'<details class="variant" id="v-{index}">{"".join(parts)}</details>'


def drill_downs(results: dict[str, Any]) -> str:
    """Every variant's drill-down, in the order of results.json."""
    metric = results["metric"]["name"]
    return "".join(variant_details(i, v, metric) for i, v in enumerate(results["variants"]))

