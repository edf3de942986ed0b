"""Speed checks: each step's speed-up over its own input, per target and batch, and a warning with
the likely reason when a step expected to speed the model up made it slower.

The reason comes from the pass itself (``Pass.slow_reason``), given the step's ledger entry and the
CPU the figures were measured on, passed in explicitly.
"""
from __future__ import annotations

from typing import Any

from compressor.run.step import VariantOutcome

SLOWER = 0.95  # below this speed-up a step counts as slower than its input
MACS_REMOVED = 0.30  # a step that removed at least this share of the MACs ...
GAIN_EXPECTED = 1.10  # ... should run at least this much faster than its input


def macs_removed(entry: dict[str, Any]) -> float | None:
    """The share of MACs a step removed, from its ledger report (structured pruning records them)."""
    report = entry.get("report") or {}
    before, after = report.get("macs_before"), report.get("macs_after")
    if not isinstance(before, (int, float)) or not isinstance(after, (int, float)) or before <= 0:
        return None
    return 1.0 - after / before


def _by_target(entries: list[dict]) -> dict[tuple, dict]:
    return {(b["runtime"], b["device"], b["batch_size"]): b for b in entries}


def sibling_checks(outcomes: list[VariantOutcome], benches: dict[str, list[dict]],
                   cpu: dict[str, Any]) -> dict[str, tuple[list[dict], list[str]]]:
    """Lower precision against full precision made from the same parent by the same pass.

    Two variants are siblings when their last steps are the same pass on the same input artifact
    and write the same format (e.g. ``convert.tflite`` with ``quantize: int8`` and without). The one
    that lowers precision should be faster than the one that does not; when it is slower on a
    target and batch, it is flagged. Per variant: (checks, warnings).
    """
    found: dict[str, tuple[list[dict], list[str]]] = {}
    done = [o for o in outcomes if o.artifact is not None and o.ledger]
    for low in done:
        step = low.passes[len(low.ledger) - 1]
        if not step.lowers_precision():
            continue
        for full in done:
            other = full.passes[len(full.ledger) - 1]
            if (full is low or other.name != step.name or other.lowers_precision()
                    or full.chain[-2].sha256 != low.chain[-2].sha256 or full.artifact.format != low.artifact.format):
                continue
            checks, warnings = found.setdefault(low.name, ([], []))
            theirs = _by_target(benches.get(full.artifact.sha256, []))
            for b in benches.get(low.artifact.sha256, []):
                f = theirs.get((b["runtime"], b["device"], b["batch_size"]))
                if f is None or "p50_ms" not in f or "p50_ms" not in b:
                    continue
                speedup = f["p50_ms"] / b["p50_ms"] if b["p50_ms"] else float("inf")
                checks.append({"sibling": full.name, "target": f"{b['runtime']}:{b['device']}",
                               "batch_size": b["batch_size"], "sibling_p50_ms": f["p50_ms"], "p50_ms": b["p50_ms"],
                               "speedup": round(speedup, 3)})
                if speedup < SLOWER:
                    warnings.append(
                        f"slower than its full-precision sibling '{full.name}' (same parent, {step.name}): "
                        f"{speedup:.2f}x on {b['runtime']}:{b['device']} batch {b['batch_size']} "
                        f"(p50 {b['p50_ms']:.3f} ms vs {f['p50_ms']:.3f} ms); likely reason: "
                        f"{step.slow_reason(low.ledger[-1], cpu)}")
    return found


def speed_checks(outcome: VariantOutcome, benches: dict[str, list[dict]],
                 cpu: dict[str, Any]) -> tuple[list[dict], list[str]]:
    """Each compared step's speed-up over its input, per target and batch; warnings when slower."""
    checks, warnings = [], []
    final = {} if outcome.artifact is None else _by_target(benches.get(outcome.artifact.sha256, []))
    for i, entry in enumerate(outcome.ledger):
        step = outcome.passes[i]
        if not step.compares_speed:
            continue
        parent = _by_target(benches.get(outcome.chain[i].sha256, []))
        speed: list[dict[str, Any]] = []  # rebuilt on every call: results may be built more than once
        for b in benches.get(outcome.chain[i + 1].sha256, []):
            p = parent.get((b["runtime"], b["device"], b["batch_size"]))
            if p is None or "p50_ms" not in p or "p50_ms" not in b:
                continue
            speedup = p["p50_ms"] / b["p50_ms"] if b["p50_ms"] else float("inf")
            checks.append({"pass": entry["pass"], "step": i + 1, "target": f"{b['runtime']}:{b['device']}",
                           "batch_size": b["batch_size"], "parent_p50_ms": p["p50_ms"], "p50_ms": b["p50_ms"],
                           "speedup": round(speedup, 3)})
            # the step's measured latency beside its input's, in its ledger entry too
            speed.append({k: v for k, v in checks[-1].items() if k not in ("pass", "step")})
            entry["speed"] = speed
            removed = macs_removed(entry)
            if removed is not None and removed >= MACS_REMOVED and SLOWER <= speedup < GAIN_EXPECTED:
                warnings.append(
                    f"step {i + 1} ({entry['pass']}) removed {removed:.0%} of the MACs but runs only {speedup:.2f}x "
                    f"its input's speed on {b['runtime']}:{b['device']} batch {b['batch_size']}; likely reason: "
                    f"{step.slow_reason(entry, cpu)}")
            if speedup >= SLOWER or not step.expects_speedup:
                continue
            last = final.get((b["runtime"], b["device"], b["batch_size"]))
            if i + 1 < len(outcome.ledger) and last is not None and p["p50_ms"] / last["p50_ms"] >= SLOWER:
                # a later step (e.g. optimize.onnx baking the graph) wins the speed back: the variant
                # is not slower than this step's input, so record it instead of warning
                checks[-1]["recovered_by_later_steps"] = round(p["p50_ms"] / last["p50_ms"], 3)
            else:
                warnings.append(
                    f"slower than its parent: step {i + 1} ({entry['pass']}) runs at {speedup:.2f}x its input's "
                    f"speed on {b['runtime']}:{b['device']} batch {b['batch_size']} (p50 {b['p50_ms']:.3f} ms vs "
                    f"{p['p50_ms']:.3f} ms); likely reason: {step.slow_reason(entry, cpu)}"
                )
    return checks, warnings
