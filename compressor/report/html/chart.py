"""The Pareto chart's data: one point per (model, target, batch) with the figures its tooltip shows,
and which points are on the Pareto front in each view (one target or all, one batch size).

The browser draws it (report.js); the figures are rounded here, with the rounding every report uses.
"""
from __future__ import annotations

import json
import math
from typing import Any

from compressor.report import pareto_front
from compressor.report.figures import kib, ratio, significant

ALL_TARGETS = "*"


def finite(value: Any) -> bool:
    """A real number that is neither NaN nor infinite (booleans are not numbers here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def interval_text(interval: Any, unit: str = "") -> str:
    """``[lo, hi]`` as "[lo–hi]" to 3 significant digits; "" when absent or malformed."""
    if not (isinstance(interval, (list, tuple)) and len(interval) == 2 and all(finite(x) for x in interval)):
        return ""
    return f"[{significant(float(interval[0]))}–{significant(float(interval[1]))}{unit}]"


def check_text(check: dict[str, Any]) -> str:
    """A speed check as a reader wants it: "0.153x [0.14–0.16], slower (cv 0.08)"; old checks: the ratio."""
    text = ratio(check["speedup"]) if finite(check.get("speedup")) else "—"
    interval = interval_text(check.get("interval"))
    text += f" {interval}" if interval else ""
    if check.get("verdict"):
        text += f", {check['verdict']}"
    if finite(check.get("cv")):
        text += f" (cv {significant(check['cv'])})"
    return text


def _last_step_check(variant: dict[str, Any], target: str, batch: Any) -> dict[str, Any] | None:
    """The variant's last compared step against its input, on this target and batch."""
    found = [c for c in variant.get("speed_checks") or [] if c.get("target") == target and c.get("batch_size") == batch]
    return max(found, key=lambda c: c.get("step", 0), default=None)


def _point(name: str, item: dict[str, Any], bench: dict[str, Any], drill: int | None, passes: str) -> dict | None:
    metric = bench.get("metric", item.get("metric"))
    if not (finite(bench.get("p50_ms")) and finite(metric)):
        return None
    size = item.get("size_bytes") or (item.get("artifact") or {}).get("size_bytes")
    target = f"{bench.get('runtime')}:{bench.get('device')}"
    p50 = significant(float(bench["p50_ms"])) + " ms"
    interval = interval_text(bench.get("interval"), " ms")  # a p50 measured with its own interval, when present
    point = {"name": name, "passes": passes, "target": target, "batch": bench.get("batch_size"),
             "p50_ms": float(bench["p50_ms"]), "metric": float(metric), "size_bytes": size if finite(size) else None,
             "p50": f"{p50} {interval}".strip(), "metric_text": significant(float(metric), 4), "size": kib(size),
             "cv": significant(bench["cv"]) if finite(bench.get("cv")) else "", "unstable": bench.get("unstable") is True,
             "drill": drill, "reference": drill is None}
    check = _last_step_check(item, target, bench.get("batch_size")) if drill is not None else None
    if check is not None:
        point["check"] = f"step {check.get('step')} vs its input: {check_text(check)}"
    return point


def chart_points(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every measured model on every target and batch that has a p50 and a metric."""
    ref = results["reference"]
    entries = [("reference", ref, None, f"input model ({ref.get('format', '?')})")]
    entries += [(v["name"], v, i, " → ".join(v.get("passes") or [])) for i, v in enumerate(results["variants"])]
    points = []
    for name, item, drill, passes in entries:
        for bench in item.get("benchmarks") or []:
            point = _point(name, item, bench, drill, passes)
            if point is not None:
                points.append(point)
    for i, point in enumerate(points):
        point["id"] = i
    return points


def fronts(points: list[dict[str, Any]], higher_is_better: bool) -> dict[str, list[int]]:
    """Point ids on the Pareto front of each view, keyed "target|batch" (target "*" = all targets)."""
    views: dict[str, list[dict]] = {}
    for p in points:
        for target in (p["target"], ALL_TARGETS):
            views.setdefault(f"{target}|{p['batch']}", []).append(p)
    return {key: sorted(p["id"] for p in pareto_front(pts, higher_is_better)) for key, pts in views.items()}


def chart_data(results: dict[str, Any]) -> dict[str, Any]:
    """All the chart needs: points, fronts, the targets and batch sizes to switch between, the metric."""
    points = chart_points(results)
    metric = results["metric"]
    return {"metric": metric["name"], "higher_is_better": bool(metric.get("higher_is_better", True)),
            "points": points, "fronts": fronts(points, bool(metric.get("higher_is_better", True))),
            "targets": sorted({p["target"] for p in points}),
            "batches": sorted({p["batch"] for p in points if finite(p["batch"])})}


def script_json(data: Any) -> str:
    """JSON that is safe inside a <script> element: no "</script>", "<!--" or line separators can end it."""
    text = json.dumps(data, allow_nan=False, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e"),
                          ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escaped)
    return text
