"""Speed checks: each step's speed-up over its own input, per target and batch, and each lower-precision
variant against its full-precision sibling; a warning with the likely reason when one is slower.

The reason is read from the runtime's per-operator profiles of the two models (``compressor.run.why``,
given ``profiles``: it also writes the step's ledger ``profile``); without them, or where the runtime
has no profiler, it is the pass's fixed sentence (``Pass.slow_reason``) for the CPU the figures were
measured on, passed in explicitly.

Where the pair was measured in paired rounds (``compressor.run.paired``), a check carries the rounds,
their median speed-up, its 95% interval and a verdict, and "slower" is said only on the verdict
"slower"; an inconclusive pair is recorded as such, never as a warning. Without paired rounds (results
built from single measurements only) the ratio of the two p50s is used against ``SLOWER``.

The reason comes from the pass itself (``Pass.slow_reason``), given the step's ledger entry and the
CPU the figures were measured on, passed in explicitly.
"""
from __future__ import annotations

from typing import Any

from compressor.run.step import VariantOutcome
from compressor.run.why import Profiles, explain_slow, mac_shortfalls

SLOWER = 0.95  # without paired rounds: below this speed-up a step counts as slower than its input
PAIRED_KEYS = ("rounds", "speedup", "interval", "verdict", "cv", "min_effect")

Paired = dict[tuple[str, str, str, int], dict[str, Any]]  # (before sha256, after sha256, target, batch) -> record


def _by_target(entries: list[dict]) -> dict[tuple, dict]:
    return {(b["runtime"], b["device"], b["batch_size"]): b for b in entries}


def siblings(outcomes: list[VariantOutcome]) -> list[tuple[VariantOutcome, VariantOutcome]]:
    """(lower precision, full precision) variants made from the same parent by the same pass.

    Two variants are siblings when their last steps are the same pass on the same input artifact and
    write the same format (e.g. ``convert.tflite`` with ``quantize: int8`` and without).
    """
    found = []
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
            found.append((low, full))
    return found


def _compare(before: dict, after: dict, paired: Paired, shas: tuple[str, str]) -> dict[str, Any] | None:
    """The speed-up of ``after`` over ``before`` on one target and batch: paired when measured so, else p50s."""
    if "p50_ms" not in before or "p50_ms" not in after:
        return None
    target = f"{after['runtime']}:{after['device']}"
    record = paired.get((*shas, target, after["batch_size"]))
    if record is not None and "verdict" in record:
        found = {k: record[k] for k in PAIRED_KEYS}
        found["slower"] = record["verdict"] == "slower"
        return found
    speedup = before["p50_ms"] / after["p50_ms"] if after["p50_ms"] else float("inf")
    found = {"speedup": round(speedup, 3), "slower": speedup < SLOWER}
    if record is not None and "error" in record:
        found["paired_error"] = record["error"]
    return found


def _figure(c: dict[str, Any]) -> str:
    """How a warning states a speed-up: with its interval and rounds when paired."""
    if "interval" not in c:
        return f"{c['speedup']:.2f}x"
    lo, hi = c["interval"]
    return f"{c['speedup']:.2f}x (95% interval {lo:.2f}-{hi:.2f}, {len(c['rounds'])} paired rounds)"


def sibling_checks(outcomes: list[VariantOutcome], benches: dict[str, list[dict]], cpu: dict[str, Any],
                   paired: Paired | None = None, profiles: Profiles | None = None) -> dict[str, tuple[list[dict], list[str]]]:
    """Lower precision against full precision made from the same parent by the same pass.

    The one that lowers precision should be faster than the one that does not; when it is slower on a
    target and batch, it is flagged. Per variant: (checks, warnings).
    """
    found: dict[str, tuple[list[dict], list[str]]] = {}
    for low, full in siblings(outcomes):
        step = low.passes[len(low.ledger) - 1]
        checks, warnings = found.setdefault(low.name, ([], []))
        theirs = _by_target(benches.get(full.artifact.sha256, []))
        for b in benches.get(low.artifact.sha256, []):
            f = theirs.get((b["runtime"], b["device"], b["batch_size"]))
            c = None if f is None else _compare(f, b, paired or {}, (full.artifact.sha256, low.artifact.sha256))
            if c is None:
                continue
            slower = c.pop("slower")
            checks.append({"sibling": full.name, "target": f"{b['runtime']}:{b['device']}",
                           "batch_size": b["batch_size"], "sibling_p50_ms": f["p50_ms"], "p50_ms": b["p50_ms"], **c})
            if slower:
                warnings.append(
                    f"slower than its full-precision sibling '{full.name}' (same parent, {step.name}): "
                    f"{_figure(c)} on {b['runtime']}:{b['device']} batch {b['batch_size']} "
                    f"(p50 {b['p50_ms']:.3f} ms vs {f['p50_ms']:.3f} ms); "
                    + explain_slow(profiles, step, low.ledger[-1], cpu, full.artifact, low.artifact, b, c["speedup"],
                                   against=f"sibling '{full.name}'"))
    return found


def speed_checks(outcome: VariantOutcome, benches: dict[str, list[dict]], cpu: dict[str, Any],
                 paired: Paired | None = None, profiles: Profiles | None = None) -> tuple[list[dict], list[str]]:
    """Each compared step's speed-up over its input, per target and batch; warnings when slower."""
    checks, warnings = [], []
    paired = paired or {}
    final = {} if outcome.artifact is None else _by_target(benches.get(outcome.artifact.sha256, []))
    for i, entry in enumerate(outcome.ledger):
        step = outcome.passes[i]
        if not step.compares_speed:
            continue
        before, after = outcome.chain[i].sha256, outcome.chain[i + 1].sha256
        parent = _by_target(benches.get(before, []))
        speed: list[dict[str, Any]] = []  # rebuilt on every call: results may be built more than once
        for b in benches.get(after, []):
            key = (b["runtime"], b["device"], b["batch_size"])
            p = parent.get(key)
            c = None if p is None else _compare(p, b, paired, (before, after))
            if c is None:
                continue
            slower = c.pop("slower")
            check = {"pass": entry["pass"], "step": i + 1, "target": f"{b['runtime']}:{b['device']}",
                     "batch_size": b["batch_size"], "parent_p50_ms": p["p50_ms"], "p50_ms": b["p50_ms"], **c}
            checks.append(check)
            # the step's measured latency beside its input's, in its ledger entry too
            speed.append({k: v for k, v in check.items() if k not in ("pass", "step")})
            entry["speed"] = speed
            if not slower or not step.expects_speedup:
                continue
            last = final.get(key)
            whole = None if last is None or i + 1 >= len(outcome.ledger) else \
                _compare(p, last, paired, (before, outcome.artifact.sha256))
            if whole is not None and not whole["slower"]:
                # a later step (e.g. optimize.onnx baking the graph) wins the speed back: the variant
                # is not slower than this step's input, so record it instead of warning
                check["recovered_by_later_steps"] = round(whole["speedup"], 3)
            else:
                warnings.append(
                    f"slower than its parent: step {i + 1} ({entry['pass']}) runs at {_figure(check)} its input's "
                    f"speed on {b['runtime']}:{b['device']} batch {b['batch_size']} (p50 {b['p50_ms']:.3f} ms vs "
                    f"{p['p50_ms']:.3f} ms); "
                    + explain_slow(profiles, step, entry, cpu, outcome.chain[i], outcome.chain[i + 1], b,
                                   check["speedup"])
                )
    warnings += mac_shortfalls(profiles, outcome, checks, cpu)  # why, from the profile (run/why.py)
    return checks, warnings


def pairs_to_compare(outcomes: list[VariantOutcome]) -> list[tuple[str, str]]:
    """Every (before, after) artifact pair a speed check reads, by sha256: each compared step against its
    input, the variant's result against the input of each earlier compared step (to see whether a later
    step wins the speed back), each lower-precision variant against its full-precision sibling, and each
    variant against the reference (on the targets that run both)."""
    pairs = []
    for o in outcomes:
        for i, step in enumerate(o.passes[:len(o.ledger)]):
            if step.compares_speed:
                pairs.append((o.chain[i].sha256, o.chain[i + 1].sha256))
                if o.artifact is not None and i + 1 < len(o.ledger):
                    pairs.append((o.chain[i].sha256, o.artifact.sha256))
    pairs += [(full.artifact.sha256, low.artifact.sha256) for low, full in siblings(outcomes)]
    pairs += [(o.chain[0].sha256, o.artifact.sha256) for o in outcomes if o.artifact is not None and o.chain]
    return list(dict.fromkeys(p for p in pairs if p[0] != p[1]))


def reference_checks(outcome: VariantOutcome, benches: dict[str, list[dict]], paired: Paired | None = None) -> list[dict]:
    """The variant against the reference model, on each target and batch that ran both (recorded, not warned
    about: a slower step is what the speed checks flag)."""
    if outcome.artifact is None or not outcome.chain or outcome.artifact.sha256 == outcome.chain[0].sha256:
        return []
    ref = _by_target(benches.get(outcome.chain[0].sha256, []))
    checks = []
    for b in benches.get(outcome.artifact.sha256, []):
        r = ref.get((b["runtime"], b["device"], b["batch_size"]))
        c = None if r is None else _compare(r, b, paired or {}, (outcome.chain[0].sha256, outcome.artifact.sha256))
        if c is not None:
            c.pop("slower")
            checks.append({"target": f"{b['runtime']}:{b['device']}", "batch_size": b["batch_size"],
                           "reference_p50_ms": r["p50_ms"], "p50_ms": b["p50_ms"], **c})
    return checks
