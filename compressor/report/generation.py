"""The report's generation section (language models): greedy agreement, prefill and decode figures."""
from __future__ import annotations

from typing import Any

from compressor.report.figures import significant

HEAD = ["model", "target", "prompt", "prefill ms", "decode ms/token p50", "p90", "tokens/s", "cold ms", "RSS MB",
        "greedy agreement", "= reference"]


def _rows(name: str, gen: dict[str, Any]) -> list[list[str]]:
    agreement = gen.get("greedy_agreement")
    same = {True: "yes", False: "no"}.get(gen.get("identical_to_reference"), "—")
    rows = []
    for m in gen.get("measurements", []):
        target = f"{m['runtime']}:{m['device']}"
        if m.get("error"):
            rows.append([name, target, "—", m["error"], "", "", "", "", "", significant(agreement), same])
            continue
        rows.append([name, target, str(m["prompt_tokens"]), significant(m["prefill_ms"]),
                     significant(m["decode_ms_p50"]), significant(m["decode_ms_p90"]), significant(m["tokens_per_s"]),
                     significant(m["cold_start_ms"]), significant(m["peak_rss_mb"]), significant(agreement), same])
    why = gen.get("error") or gen.get("skipped") or "not measured"
    return rows or [[name, "—", "—", why, "", "", "", "", "", significant(agreement), same]]


def generation_lines(results: dict[str, Any]) -> list[str]:
    """A Markdown section for the runs that measured generation; nothing for the others."""
    models = [("reference", results["reference"])] + [(v["name"], v) for v in results["variants"]]
    rows = [r for name, item in models if item.get("generation") for r in _rows(name, item["generation"])]
    if not rows:
        return []
    gen = next(item["generation"] for _, item in models if item.get("generation"))
    out = ["", "## Generation", "",
           f"Greedy decoding at batch 1 with the key/value cache: prefill of a {gen['prompt_tokens']}-token held-out "
           f"prompt, then decode ms per token over the generated tokens (p50 / p90), in a fresh process per row. "
           f"Greedy agreement: the share of the reference's first {gen['agreement_tokens']} greedy tokens matched, "
           f"over {gen['prompts']} held-out prompts.", ""]
    out.append("| " + " | ".join(HEAD) + " |")
    out.append("|" + "---|" * len(HEAD))
    out += ["| " + " | ".join(r) + " |" for r in rows]
    checks = [(v["name"], c) for v in results["variants"] for c in v.get("decode_checks", [])]
    if checks:
        out += ["", "Decode speed of each compression step against its input (ms per token, p50):", ""]
        out += [f"- {n}: step {c['step']} {c['pass']} on {c['target']}: {significant(c['parent_p50_ms'])} → "
                f"{significant(c['p50_ms'])} ms ({c['speedup']:.2f}x)" for n, c in checks]
    return out


def decode_points(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Pareto points of the decode panel: ms per token (p50) against the metric."""
    pts = []
    entries = [("reference", results["reference"], results["reference"].get("metric"))]
    entries += [(v["name"], v, v.get("metric")) for v in results["variants"]]
    for name, item, metric in entries:
        size = item.get("size_bytes") or (item.get("artifact") or {}).get("size_bytes")
        for m in (item.get("generation") or {}).get("measurements", []):
            if "decode_ms_p50" in m and metric is not None:
                pts.append({"name": name, "target": f"{m['runtime']}:{m['device']}", "batch": "decode",
                            "p50_ms": m["decode_ms_p50"], "metric": metric, "size_bytes": size})
    return pts
