"""The search section of a report: the study, the best-so-far front, who beat the hand-written
variants, and every trial — built from results.json's ``search`` alone."""
from __future__ import annotations

import json
from typing import Any

from compressor.report.figures import kib, significant


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(r) + " |" for r in rows]


def _interval(lo: Any, hi: Any, digits: int = 3) -> str:
    if lo is None or hi is None:
        return ""
    return f" [{significant(float(lo), digits)}, {significant(float(hi), digits)}]"


def _metric(row: dict[str, Any]) -> str:
    if row.get("metric") is None:
        return "—"
    lo, hi = (row.get("metric_interval") or [None, None])[:2]
    return f"{row['metric']:.4f}" + _interval(lo, hi, 4)


def _p50(row: dict[str, Any]) -> str:
    if row.get("p50_ms") is None:
        return "—"
    return significant(row["p50_ms"]) + _interval(row.get("p50_low_ms"), row.get("p50_high_ms"))


def _settings(row: dict[str, Any]) -> str:
    params = row.get("params") or {}
    return f"`{json.dumps(params)}`" if params else ""


def search_lines(results: dict[str, Any]) -> list[str]:
    """Markdown lines of the search section (none when results.json holds no search)."""
    s = results.get("search")
    if not s:
        return []
    lat, cache = s["latency"], s["cache"]
    out = ["## Search", "",
           f"Study `{s['study']}` in `{s['storage']}`, sampler {s['sampler']}; objectives {', '.join(s['objectives'])} "
           f"(p50 on {lat['target']} at batch {lat['batch_size']}); the budget is a constraint. "
           f"{s['trials_finished']} of {s['trials_requested']} trials finished ({s['trials_failed']} failed, "
           f"{s['trials_interrupted']} cut short by a kill and drawn again); stopped by: {s['stopped']}.", "",
           f"Cache: {cache['steps_run']} pass steps ran, {cache['steps_cached']} came from the cache; "
           f"{cache['measurements_taken']} measurements taken, {cache['measurements_cached']} from the cache.", "",
           "Intervals are 95%: Wilson for accuracy on the evaluation samples, order statistics of one measurement's "
           "runs for the p50 (the spread between processes is not in them).", "",
           "### Pareto front (within budget)", ""]
    by_name = {t["name"]: t for t in s["trials"]}
    front = [by_name[n] for n in s["front"] if n in by_name]
    out += _table(["trial", "template", "settings", results["metric"]["name"], "drop", "p50 ms", "size"],
                  [[t["name"], t.get("template", ""), _settings(t), _metric(t), f"{t['metric_drop']:+.4f}", _p50(t),
                    kib(t.get("size_bytes"))] for t in front]) if front else ["No trial within budget yet."]
    out += ["", "### Against the hand-written variants", ""]
    beaten = {d["variant"]: d["dominated_by"] for d in s["dominance"]}
    out += _table(["variant", results["metric"]["name"], "p50 ms", "size", "beaten by"],
                  [[c["name"], _metric(c), _p50(c), kib(c.get("size_bytes")),
                    "; ".join(f"{b['trial']} ({b['how']})" for b in beaten.get(c["name"], [])) or "none"]
                   for c in s["compared"]])
    out += ["", "### Every trial", ""]
    out += _table(["trial", "state", "template", "settings", results["metric"]["name"], "p50 ms", "size", "steps run / cached",
                   "note"],
                  [[t["name"], t["state"].lower(), t.get("template", ""), _settings(t), _metric(t), _p50(t),
                    kib(t.get("size_bytes")),
                    f"{t.get('cache', {}).get('steps_run', '—')} / {t.get('cache', {}).get('steps_cached', '—')}",
                    "interrupted" if t.get("interrupted") else (f"redo of trial {t['retry_of']}" if "retry_of" in t
                                                                else (t.get("error") or "")[:120].replace("|", "/"))]
                   for t in s["trials"]])
    return out + [""]
