"""Sortable HTML tables: each cell carries its display text (rounded, escaped) and the raw value the
browser sorts by, so "1,430" sorts after "999" and a missing figure sorts last."""
from __future__ import annotations

from html import escape
from typing import Any

from compressor.report.figures import kib, significant
from compressor.report.html.chart import check_text, finite

Cell = tuple[str, Any]  # (escaped HTML shown, raw sort key: a number, a string, or None)


def txt(value: Any) -> Cell:
    """Plain text, escaped; sorts as text."""
    text = "—" if value is None else str(value)
    return escape(text), text


def num(value: Any, digits: int = 3, suffix: str = "") -> Cell:
    """A figure to ``digits`` significant digits; sorts by its full value; "—" when absent."""
    if not finite(value):
        return "—", None
    return escape(significant(value, digits) + suffix), value


def size(n: Any) -> Cell:
    """A size in bytes shown in KiB."""
    return (escape(kib(n)), n) if finite(n) else ("—", None)


def html_cell(markup: str, key: Any) -> Cell:
    """Markup already escaped by the caller, with its sort key."""
    return markup, key


def badge(text: str, kind: str) -> str:
    """A small coloured label: kind is one of good, bad, warn, muted."""
    return f'<span class="badge {kind}">{escape(text)}</span>'


def _td(cell: Cell) -> str:
    shown, key = cell
    if key is None:
        return f'<td data-v="" class="na">{shown}</td>'
    cls = ' class="n"' if finite(key) else ""
    return f'<td data-v="{escape(str(key))}"{cls}>{shown}</td>'


def table(head: list[str], rows: list[list[Cell]], table_id: str, caption: str = "") -> str:
    """A table whose header buttons sort it (report.js); ``caption`` says what one row is."""
    ths = "".join(f'<th scope="col"><button type="button">{escape(h)}</button></th>' for h in head)
    body = "".join("<tr>" + "".join(_td(c) for c in row) + "</tr>" for row in rows)
    cap = f"<caption>{escape(caption)}</caption>" if caption else ""
    ident = f' id="{escape(table_id)}"' if table_id else ""
    return (f'<table class="sortable"{ident}>{cap}<thead><tr>{ths}</tr></thead>'
            f"<tbody>{body}</tbody></table>")


def variant_link(index: int, name: str) -> Cell:
    """The variant's name, linking to its drill-down."""
    return f'<a href="#v-{index}" class="drill">{escape(name)}</a>', name


def variants_table(results: dict[str, Any]) -> str:
    """One row per variant: what it is, how big, how good, whether it kept the budget."""
    metric = results["metric"]["name"]
    rows = []
    for i, v in enumerate(results["variants"]):
        a = v.get("artifact") or {}
        budget = badge("yes", "good") if v.get("within_budget") else badge("no", "bad")
        status = v.get("status", "—")
        rows.append([variant_link(i, v["name"]), txt(" → ".join(v.get("passes") or [])), txt(a.get("format")),
                     size(a.get("size_bytes")), size(a.get("gzip_bytes")), num(v.get("metric"), 4),
                     num(v.get("metric_drop"), 3), html_cell(budget, int(bool(v.get("within_budget")))),
                     html_cell(badge(status, "good" if status == "ok" else "bad"), status),
                     num(len(v.get("warnings") or []))])
    head = ["variant", "passes", "format", "size", "gzip", metric, "drop", "in budget", "status", "warnings"]
    return table(head, rows, "variants", "one row per variant; click a name for its ledger")


def _stability(b: dict[str, Any]) -> Cell:
    """Whether a measurement's spread stayed high after its re-measurements (noise guard, when recorded)."""
    parts, key = [], 0
    if b.get("unstable") is True:
        parts.append(badge("unstable", "warn"))
        key = 2
    if finite(b.get("remeasured")) and b["remeasured"]:
        parts.append(escape(f"re-measured {b['remeasured']}x"))
        key = max(key, 1)
    if b.get("cached"):
        parts.append(badge("cached", "muted"))
    if "error" in b:
        parts.append(badge("error", "bad"))
        key = 3
    return " ".join(parts) or "", key


def _bench_row(model: Cell, b: dict[str, Any]) -> list[Cell]:
    metric = b.get("metric")
    return [model, txt(f"{b.get('runtime')}:{b.get('device')}"), num(b.get("batch_size")), num(b.get("p50_ms")),
            num(b.get("p90_ms")), num(b.get("cv")), num(b.get("throughput_per_s")), num(b.get("cold_start_ms")),
            num(b.get("peak_rss_mb")), num(metric, 4) if finite(metric) else txt(b.get("error", metric)),
            num(b.get("load")), _stability(b)]


def latency_table(results: dict[str, Any]) -> str:
    """One row per measurement: model, target and batch, its figures, and how steady it was."""
    rows = [_bench_row(txt("reference"), b) for b in results["reference"].get("benchmarks") or []]
    for i, v in enumerate(results["variants"]):
        rows += [_bench_row(variant_link(i, v["name"]), b) for b in v.get("benchmarks") or []]
    head = ["model", "target", "batch", "p50 ms", "p90 ms", "cv", "per s", "cold ms", "RSS MB",
            results["metric"]["name"], "load", "stability"]
    return table(head, rows, "latency", "one measurement per row, each in a fresh process")


VERDICT_KIND = {"faster": "good", "slower": "bad", "no change": "muted", "inconclusive": "warn"}


def verdict(check: dict[str, Any]) -> Cell:
    """The check's verdict as a badge; "—" for a check recorded before verdicts existed."""
    found = check.get("verdict")
    if not found:
        return "—", None
    return badge(str(found), VERDICT_KIND.get(found, "muted")), str(found)


def check_row(model: Cell, check: dict[str, Any], against: str, against_p50: Any) -> list[Cell]:
    """A speed check's row: what it compared, both p50s, the speed-up with its interval and verdict."""
    rounds = check.get("rounds")
    return [model, txt(against), txt(check.get("target")), num(check.get("batch_size")), num(against_p50),
            num(check.get("p50_ms")), html_cell(escape(check_text(check)), check.get("speedup")), verdict(check),
            num(len(rounds)) if isinstance(rounds, list) else ("—", None)]


CHECK_HEAD = ["variant", "against", "target", "batch", "their p50 ms", "p50 ms", "speed-up [95% interval]",
              "verdict", "rounds"]


def other_checks(variant: dict[str, Any]) -> list[tuple[dict[str, Any], str, Any]]:
    """Checks a run records under another ``*_checks`` key (e.g. against the reference): (check, against, p50)."""
    found = []
    for key, checks in variant.items():
        if not key.endswith("_checks") or key in ("speed_checks", "sibling_checks") or not isinstance(checks, list):
            continue
        for c in checks:
            if isinstance(c, dict):
                theirs = next((k for k in c if k.endswith("_p50_ms") and k != "p50_ms"), None)
                against = c.get("against") or key.removesuffix("_checks").replace("_", " ")
                found.append((c, str(against), c.get(theirs) if theirs else None))
    return found


def checks_table(results: dict[str, Any]) -> str:
    """Every speed check: each step against its input, each lower-precision variant against its sibling,
    and any other comparison the run recorded."""
    rows = []
    for i, v in enumerate(results["variants"]):
        link = variant_link(i, v["name"])
        rows += [check_row(link, c, f"step {c.get('step')} {c.get('pass')} vs its input", c.get("parent_p50_ms"))
                 for c in v.get("speed_checks") or []]
        rows += [check_row(link, c, f"sibling {c.get('sibling')}", c.get("sibling_p50_ms"))
                 for c in v.get("sibling_checks") or []]
        rows += [check_row(link, c, against, theirs) for c, against, theirs in other_checks(v)]
    if not rows:
        return ""
    return table(CHECK_HEAD, rows, "checks", "speed-up = their p50 / this p50; above 1 is faster")
