"""Reports built from results.json alone: report.md, report.html and pareto.png."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from compressor.cache import atomic_write_text, temp_sibling
from compressor.errors import ConfigError
from compressor.report.figures import kib, ratio, significant
from compressor.report.search import search_lines
from compressor.report.generation import decode_points, generation_lines


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


_kb = kib


def _table(head: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(_fmt(c) if not isinstance(c, str) else c for c in r) + " |" for r in rows]
    return lines


def _speedup_text(check: dict[str, Any]) -> str:
    text = ratio(check["speedup"])
    if "interval" in check:  # paired rounds: the median ratio, its 95% interval and the verdict
        lo, hi = check["interval"]
        verdict = check["verdict"] + (f" (cv {significant(check['cv'], 2)})" if check["verdict"] == "inconclusive" else "")
        text += f" [{significant(lo)}–{significant(hi)}, {len(check['rounds'])} rounds] {verdict}"
    if "recovered_by_later_steps" in check:
        text += f" (the variant's last step: {ratio(check['recovered_by_later_steps'])} this input)"
    return text


def markdown(results: dict[str, Any]) -> str:
    """The whole report as Markdown."""
    ref, metric = results["reference"], results["metric"]["name"]
    out = [f"# {results['pipeline']}", "",
           f"Reference: {ref['format']} `{ref['source']}`, {metric} {_fmt(ref['metric'])}, "
           f"{_kb(ref['size_bytes'])}. Budget: {metric} may drop by at most {results['budget']['max_drop']}{' of its value' if results['budget'].get('relative') else ''}.", "",
           *_data_lines(results), "## Variants", ""]
    rows = []
    for v in results["variants"]:
        a = v.get("artifact") or {}
        rows.append([v["name"], " → ".join(v["passes"]), a.get("format", "—"), _kb(a.get("size_bytes")),
                     _kb(a.get("gzip_bytes")), v.get("metric"), v.get("metric_drop"),
                     "yes" if v.get("within_budget") else "no", v["status"]])
    out += _table(["variant", "passes", "format", "size", "gzip", metric, "drop", "in budget", "status"], rows)
    per_output = [(v["name"], v["metric_per_output"]) for v in results["variants"] if v.get("metric_per_output")]
    if per_output:
        out += ["", f"{metric} of each scored output:", ""]
        out += [f"- {n}: " + ", ".join(f"{k} {_fmt(x)}" for k, x in d.items()) for n, d in per_output]
    out += ["", "## Latency", "", "p50 in ms, 1 measurement per row in a fresh process (taken again when its runs "
            "spread too much: robust cv above the pipeline's max_cv; rows marked unstable stayed so; load = 1-minute "
            "load average per core).", ""]
    brows = [["reference", b["runtime"] + ":" + b["device"], b["batch_size"], *_figures(b), b.get("metric")]
             for b in ref.get("benchmarks", [])]
    for v in results["variants"]:
        for b in v.get("benchmarks", []):
            where = f"@node:{b['resource']}" if b.get("resource") else ""
            brows.append([v["name"], b["runtime"] + ":" + b["device"] + where, b["batch_size"], *_figures(b),
                          b.get("metric", b.get("error"))])
    out += _table(["model", "target", "batch", "p50 ms", "p90 ms", "cv", "per s", "cold ms", "RSS MB", metric], brows)
    cached = sum(b.get("cached", False) for v in [ref, *results["variants"]] for b in v.get("benchmarks", []))
    if cached:
        out += ["", f"{cached} of these rows come from the cache: measured earlier on this machine with the same "
                    f"settings (`--remeasure` takes fresh ones)."]
    checks = [(v["name"], c) for v in results["variants"]
              for c in v.get("speed_checks", []) + v.get("sibling_checks", []) + v.get("reference_checks", [])]
    if checks:
        out += ["", "## Speed checks", "", "Each compression step against its own input, each lower-precision variant "
                "against its full-precision sibling, and each variant against the reference, same target and batch. "
                "Where measured in paired rounds (a fresh process each, interleaved), the speed-up is the median of "
                "the rounds' ratios with its 95% interval; 'slower' needs the whole interval below 1/(1 + min_effect).",
                ""]
        out += _table(["variant", "step", "target", "batch", "input p50", "p50", "speed-up"],
                      [[n, f"{c['step']} {c['pass']}" if "step" in c else f"sibling {c['sibling']}" if "sibling" in c
                        else "the whole variant against the reference", c["target"], c["batch_size"],
                        significant(c.get("parent_p50_ms", c.get("sibling_p50_ms", c.get("reference_p50_ms")))),
                        significant(c["p50_ms"]), _speedup_text(c)] for n, c in checks])
    out += generation_lines(results)
    warnings = [(v["name"], w) for v in results["variants"] for w in v.get("warnings", [])]
    if warnings or results.get("skipped_targets") or results.get("warnings"):
        out += ["", "## Warnings", ""]
        out += [f"- {w}" for w in results.get("warnings", [])]  # the run's own: cache entries that failed a check
        out += [f"- **{n}**: {w}" for n, w in warnings]
        out += [f"- target `{s['target']}` skipped: {s['reason']}" for s in results.get("skipped_targets", [])]
    out += ["", *search_lines(results), "## Ledger", ""]
    for v in results["variants"]:
        out += [f"### {v['name']}", ""]
        if v.get("error"):
            out += [f"**failed**: {v['error']}", ""]
        out += _table(["#", "pass", "config", "formats", "size", metric, "drop", "p50 ms", "parity max err", "seconds", "cache"],
                      [[i + 1, e["pass"], f"`{json.dumps(e['config'])}`" if e["config"] else "", 
                        f"{e['format_in']}→{e['format_out']}", _kb(e["size_bytes"]), e["metric"], e["metric_drop"],
                        _step_latency(e), _fmt(e["parity"]["max_abs_error"], 6) if e.get("parity") else "—", significant(e["seconds"]),
                        "hit" if e["cache_hit"] else "run"] for i, e in enumerate(v["ledger"])])
        out += [f"- step {i + 1} {e['pass']}: {facts}" for i, e in enumerate(v["ledger"]) if (facts := _step_facts(e))]
        out.append("")
    env = results["environment"]
    out += ["## Environment", "", f"- CPU: {env['cpu']['model']} ({env['cores']} cores); ISA: {', '.join(env['cpu']['isa'])}",
            f"- load average: {env['load_average']}", f"- Python {env['python']} on {env['platform']}",
            "- " + ", ".join(f"{k} {v}" for k, v in env["packages"].items()), ""]
    return "\n".join(out)


def _figures(b: dict[str, Any]) -> list[str]:
    """A benchmark row's p50 (marked when unstable), p90, cv, per s, cold ms and RSS MB, to 3 significant digits."""
    keys = ("p50_ms", "p90_ms", "cv", "throughput_per_s", "cold_start_ms", "peak_rss_mb")
    cells = [significant(b.get(k)) for k in keys]
    if b.get("unstable"):
        cells[0] += (f" (unstable: robust cv {significant(b.get('robust_cv', b.get('cv')), 2)} after {b.get('remeasured', 0)} "
                     f"re-measurements, load {significant(b.get('load'), 2)})")
    return cells


def _data_lines(results: dict[str, Any]) -> list[str]:
    """How many samples the metric was computed on (and calibrated / trained on), and which outputs it scored."""
    data = results.get("data")  # absent in results written before it was recorded
    if not data:
        return []
    parts = [f"{data['evaluation_samples']} evaluation samples"]
    parts += [f"{data[k]} {k.split('_')[0]} samples" for k in ("calibration_samples", "training_samples") if k in data]
    outputs = results["metric"].get("outputs") or []
    scored = f"; {results['metric']['name']} on output(s) {', '.join(outputs)}" if outputs else ""
    worst = " (the worst of them counts)" if len(outputs) > 1 else ""
    return [f"Data: {', '.join(parts)}{scored}{worst}.", ""]


FACTS = (("params", "params_before", "params_after"), ("MACs", "macs_before", "macs_after"),
         ("params (teacher → student)", "teacher_params", "student_params"))
NOTES = ("sparsity", "pattern", "layers_skipped_count", "saved_as", "trainable_params", "cpu_gain", "gpu_gain")


def _step_facts(entry: dict[str, Any]) -> str:
    """What a pass reported that a reader wants in the ledger: params and MACs, sparsity, honest gains."""
    report = entry.get("report") or {}
    parts = [f"{label} {report[a]:,} → {report[b]:,}" for label, a, b in FACTS if a in report and b in report]
    parts += [f"{key.replace('_', ' ')}: {report[key]}" for key in NOTES if key in report]
    return "; ".join(parts)


def _step_latency(entry: dict[str, Any]) -> str:
    """A ledger step's p50 on each target and batch it was measured on (``benchmark.ledger_steps``)."""
    found = [b for b in entry.get("benchmarks", []) if "p50_ms" in b]
    return "; ".join(f"{b['runtime']}:{b['device']} b{b['batch_size']} {significant(b['p50_ms'])}" for b in found) or "—"


def pareto_points(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One point per (model, target, batch): p50 latency, metric, size."""
    pts = []
    entries = [("reference", results["reference"])] + [(v["name"], v) for v in results["variants"]]
    for name, item in entries:
        size = item.get("size_bytes") or (item.get("artifact") or {}).get("size_bytes")
        for b in item.get("benchmarks", []):
            if "p50_ms" in b:
                pts.append({"name": name, "target": f"{b['runtime']}:{b['device']}", "batch": b["batch_size"],
                            "p50_ms": b["p50_ms"], "metric": b.get("metric"), "size_bytes": size})
    return pts + decode_points(results)  # language models: a panel of decode ms per token


def pareto_front(points: list[dict[str, Any]], higher_is_better: bool = True) -> list[dict[str, Any]]:
    """Points no other point beats on both latency and metric."""
    sign = 1 if higher_is_better else -1
    front = []
    for p in points:
        dominated = any(q["p50_ms"] <= p["p50_ms"] and sign * q["metric"] >= sign * p["metric"] and
                        (q["p50_ms"] < p["p50_ms"] or sign * q["metric"] > sign * p["metric"]) for q in points)
        if not dominated:
            front.append(p)
    return front


def plot_pareto(results: dict[str, Any], path: Path) -> bool:
    """Metric vs p50 latency for every measured model, one panel per batch size."""
    points = [p for p in pareto_points(results) if p["metric"] is not None]
    if not points:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    batches = sorted({p["batch"] for p in points}, key=lambda b: (isinstance(b, str), str(b).zfill(8)))
    fig, axes = plt.subplots(1, len(batches), figsize=(6 * len(batches), 4.5), squeeze=False)
    for ax, batch in zip(axes[0], batches):
        pts = [p for p in points if p["batch"] == batch]
        for target in sorted({p["target"] for p in pts}):
            tp = [p for p in pts if p["target"] == target]
            ax.scatter([p["p50_ms"] for p in tp], [p["metric"] for p in tp],
                       s=[20 + 180 * (p["size_bytes"] or 0) / max(q["size_bytes"] or 1 for q in points) for p in tp],
                       label=target, alpha=0.7)
            for p in tp:
                ax.annotate(p["name"], (p["p50_ms"], p["metric"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
        front = sorted(pareto_front(pts, results["metric"]["higher_is_better"]), key=lambda p: p["p50_ms"])
        ax.plot([p["p50_ms"] for p in front], [p["metric"] for p in front], "k--", lw=0.8, label="Pareto front")
        ax.set_xscale("log")
        decode = batch == "decode"
        ax.set_xlabel("decode ms per token, p50 (log)" if decode else "p50 latency (ms, log)")
        ax.set_ylabel(results["metric"]["name"])
        ax.set_title(f"{'generation, batch 1, KV cache' if decode else f'batch {batch}'} (marker area ~ file size)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    tmp = temp_sibling(path)  # unique to this process: concurrent writers never collide
    try:
        fig.savefig(tmp, dpi=110, format="png")
        tmp.replace(path)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
    return True


def write_reports(results: dict[str, Any], out_dir: Path) -> Path:
    """Write report.md, report.html and pareto.png into ``out_dir``; return report.md's path."""
    from compressor.report.html import page

    md = markdown(results)
    plot_pareto(results, out_dir / "pareto.png")
    atomic_write_text(out_dir / "report.md", md)
    atomic_write_text(out_dir / "report.html", page(results))
    return out_dir / "report.md"


def rebuild(out_dir: Path) -> Path:
    """Rebuild the reports of a run folder from its results.json, without re-running anything."""
    path = Path(out_dir) / "results.json"
    if not path.is_file():
        raise ConfigError(f"'{path}' does not exist; give a run folder written by 'compressor run'.")
    try:
        results = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"'{path}' is not valid JSON ({exc}); it is truncated or edited: run the pipeline again.") from None
    if not isinstance(results, dict) or results.get("schema") != 1 or "variants" not in results:
        raise ConfigError(f"'{path}' is not a compressor results file (schema 1 with variants); "
                          f"give a run folder written by 'compressor run'.")
    try:
        return write_reports(results, Path(out_dir))
    except (KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"'{path}' misses or mangles a field the report needs ({exc!r}); run the pipeline again.") from None
