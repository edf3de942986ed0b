"""A comparison of two runs (``compressor compare``) as Markdown, for a CI comment."""
from __future__ import annotations

from typing import Any

from compressor.report.figures import significant


def _pct(value: float) -> str:
    return f"{value:+.1%}"


def _latency_text(row: dict[str, Any]) -> list[str]:
    """speed-up, interval, verdict, rounds of one latency row (or why it was not compared)."""
    if "not_compared" in row:
        return ["—", "—", f"not compared: {row['not_compared']}", "—"]
    if row.get("same_artifact"):
        return ["1x", "—", "same model file (sha256), not re-measured", "—"]
    lo, hi = row["interval"]
    verdict = row["verdict"] + (f" (cv {significant(row['cv'], 2)})" if row["verdict"] == "inconclusive" else "")
    return [f"{significant(row['speedup'])}x", f"{significant(lo)}–{significant(hi)}", verdict, str(len(row["rounds"]))]


def compare_markdown(comparison: dict[str, Any]) -> str:
    """The comparison as Markdown: the verdict, the metric and size per variant, latency per target and batch."""
    t = comparison["thresholds"]
    regressions = comparison["regressions"]
    head = "**passed**: no regression" if comparison["passed"] else f"**failed**: {len(regressions)} regression(s)"
    out = [f"# compare: `{comparison['new']}` against `{comparison['baseline']}`", "", head, "",
           f"Gate: {comparison['metric']} may drop by at most {t['max_drop']:g}, the model file may grow by at most "
           f"{t['max_growth']:.0%}, and a variant is slower only when the whole 95% interval of its paired speed-up "
           f"lies below 1/(1 + {t['max_slowdown']:g}).", ""]
    if regressions:
        out += ["## Regressions", ""] + [f"- {r}" for r in regressions] + [""]
    out += ["## Metric and size", "", f"| variant | status | {comparison['metric']} baseline | new | drop | size baseline "
            f"| new | growth |", "|---|---|---|---|---|---|---|---|"]
    for v in comparison["variants"]:
        m, s = v.get("metric"), v.get("size")
        cells = [v["name"], v["status"]]
        cells += [significant(m["baseline"], 4), significant(m["new"], 4), f"{m['drop']:+.4f}"] if m else ["—"] * 3
        cells += [f"{s['baseline_bytes']:,} B", f"{s['new_bytes']:,} B", _pct(s["growth"])] if s else ["—"] * 3
        out.append("| " + " | ".join(cells) + " |")
    rows = [(v["name"], r) for v in comparison["variants"] for r in v.get("latency", [])]
    if rows:
        out += ["", "## Latency", "",
                "Re-measured here, side by side: interleaved rounds of a fresh process each; speed-up = baseline p50 / "
                "new p50 per round, its median and 95% interval. The p50 columns are what each run recorded.", "",
                "| variant | target | batch | baseline p50 ms | new p50 ms | speed-up | 95% interval | verdict | rounds |",
                "|---|---|---|---|---|---|---|---|---|"]
        for name, r in rows:
            cells = [name, r.get("target", "—"), str(r.get("batch_size", "—")), significant(r.get("baseline_p50_ms")),
                     significant(r.get("new_p50_ms")), *_latency_text(r)]
            out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"
