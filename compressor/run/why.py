"""Why a step is slower, read from the runtime's own per-operator profiles of its input and output.

Only flagged steps are profiled (a step slower than its input or its full-precision sibling, or a
step that removed many MACs and gained little). Both sides are profiled at the flagged target and
batch (``compressor.measure.profile``, cached like measurements), and their difference goes into the
step's ledger entry as ``profile``: the operator types and nodes that gained and lost the most time,
the Quantize/Dequantize nodes run and their cost, and the float compute left. The warning names those
operators and milliseconds. Where the runtime has no profiler here (LiteRT) the warning says so and
keeps the pass's fixed sentence (``Pass.slow_reason``).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from compressor.artifact import Artifact
from compressor.cache import cache_key
from compressor.errors import CompressorError, first_line
from compressor.measure.profile import ProfileSettings

if TYPE_CHECKING:
    from compressor.cache import Cache
    from compressor.code import TrustPolicy
    from compressor.data import Split
    from compressor.passes.base import Pass
    from compressor.run.context import RunContext

PROFILE_VERSION = 1  # bump when what a profile holds changes
TOP = 3  # operator types and nodes named per direction
MAC_DROP = 0.30  # a step that removed at least this share of the MACs ...
MAC_GAIN = 1.10  # ... should gain at least this speed-up; below it, it is explained


@dataclass(frozen=True)
class Profiles:
    """What taking a profile needs from the run (samples, threads, trust, the cache); profiles are
    cached by artifact content, target, batch, threads, settings, samples and machine."""

    cache: Cache
    samples: Split
    threads: int
    trust: TrustPolicy
    data_fingerprint: str
    machine: dict[str, Any]
    on_event: Callable[..., None]
    settings: ProfileSettings = field(default_factory=ProfileSettings)

    @classmethod
    def of(cls, ctx: RunContext) -> Profiles:
        """The profiles of a run: the evaluation samples and thread count its measurements use."""
        from compressor.measure.environment import machine_fingerprint

        return cls(ctx.cache, ctx.data.split("evaluation").take(64), ctx.spec.benchmark.threads, ctx.trust,
                   ctx.data.fingerprint("evaluation"), machine_fingerprint(), ctx.on_event)

    def take(self, artifact: Artifact, target: str, batch: int) -> dict[str, Any]:
        """``artifact``'s per-operator profile on ``target`` at ``batch`` (from the cache when taken before)."""
        from compressor.measure.profile import profile

        runtime, _, device = target.partition(":")
        key = cache_key("profile", PROFILE_VERSION, artifact.sha256, target, batch, self.threads,
                        asdict(self.settings), self.data_fingerprint, self.machine)

        def fresh() -> dict[str, Any]:
            self.on_event("stage", message=f"profiling {artifact.id} on {target} at batch {batch}")
            return profile(artifact, runtime, device or "cpu", batch, self.threads, self.samples, self.settings,
                           trust=self.trust)

        value, _ = self.cache.memo("profile", key, fresh)
        return value


def _totals(nodes: list[dict[str, Any]], key: str) -> dict[str, tuple[str, float]]:
    found: dict[str, tuple[str, float]] = {}
    for n in nodes:
        op, ms = found.get(n[key], (n["op"], 0.0))
        found[n[key]] = (op, ms + n["ms"])
    return found


def _moves(before: dict[str, tuple[str, float]], after: dict[str, tuple[str, float]], key: str,
           top: int) -> tuple[list[dict], list[dict]]:
    """The ``top`` rows that lost time (got faster) and that gained time (got slower), largest first."""
    rows = []
    for name in before.keys() | after.keys():
        op = (after.get(name) or before[name])[0]
        t_in, t_out = before.get(name, (op, 0.0))[1], after.get(name, (op, 0.0))[1]
        row = {key: name, "input_ms": round(t_in, 4), "output_ms": round(t_out, 4), "delta_ms": round(t_out - t_in, 4)}
        rows.append(row if key == "op" else {**row, "op": op})
    gained = sorted((r for r in rows if r["delta_ms"] < 0), key=lambda r: r["delta_ms"])[:top]
    lost = sorted((r for r in rows if r["delta_ms"] > 0), key=lambda r: -r["delta_ms"])[:top]
    return gained, lost


def op_diff(before: dict[str, Any], after: dict[str, Any], top: int = TOP) -> dict[str, Any]:
    """The difference between two per-operator profiles (a step's input and output, same target and batch).

    Operator types and nodes (matched by name) that got faster (``gained``) and slower (``lost``), the
    Quantize/Dequantize nodes the output runs and their time (``qdq``), and its float compute time left.
    """
    gained, lost = _moves(_totals(before["nodes"], "op"), _totals(after["nodes"], "op"), "op", top)
    node_gained, node_lost = _moves(_totals(before["nodes"], "node"), _totals(after["nodes"], "node"), "node", top)
    qdq = [n for n in after["nodes"] if n["kind"] == "qdq"]
    return {
        "profiler": after["profiler"], "runs": min(before["runs"], after["runs"]),
        "input_ms": round(before["total_ms"], 4), "output_ms": round(after["total_ms"], 4),
        "gained": gained, "lost": lost, "nodes": {"gained": node_gained, "lost": node_lost},
        "qdq": {"count": len(qdq), "ms": round(float(sum(n["ms"] for n in qdq)), 4)},
        "float_ms": round(float(sum(n["ms"] for n in after["nodes"] if n["kind"] == "float_compute")), 4),
    }


def _ms(value: float) -> str:
    return f"{value:.3g}"


def _op_move(row: dict[str, Any]) -> str:
    sign = "+" if row["delta_ms"] > 0 else "-"
    return f"{row['op']} {sign}{_ms(abs(row['delta_ms']))} ms ({_ms(row['input_ms'])} -> {_ms(row['output_ms'])} ms)"


def describe(found: dict[str, Any]) -> str:
    """The warning's reason from a profile difference: operators and milliseconds."""
    parts = [f"from the {found['profiler']} profile at batch {found['batch_size']} (operator time per run "
             f"{_ms(found['input_ms'])} -> {_ms(found['output_ms'])} ms)"]
    if found["lost"]:
        parts.append("slower: " + ", ".join(_op_move(r) for r in found["lost"]))
    if found["gained"]:
        parts.append("faster: " + ", ".join(_op_move(r) for r in found["gained"]))
    slow_nodes = [n for n in found["nodes"]["lost"] if n["delta_ms"] > 0][:2]
    if slow_nodes:
        parts.append("costliest nodes: " + ", ".join(f"{n['node']} ({n['op']}) +{_ms(n['delta_ms'])} ms"
                                                     for n in slow_nodes))
    parts.append(f"Quantize/Dequantize: {found['qdq']['count']} nodes, {_ms(found['qdq']['ms'])} ms; "
                 f"float compute left: {_ms(found['float_ms'])} ms")
    return "; ".join(parts)


def _record(entry: dict[str, Any], found: dict[str, Any]) -> None:
    """Keep ``found`` in the ledger entry: ``profile`` is the worst explained check, ``profiles`` all of them."""
    same = ("target", "batch_size", "against")
    earlier = entry.get("profiles") or ([entry["profile"]] if "profile" in entry else [])
    kept = [p for p in earlier if any(p.get(k) != found[k] for k in same)] + [found]
    entry["profile"] = min(kept, key=lambda p: p.get("speedup", float("inf")))
    if len(kept) > 1:
        entry["profiles"] = kept


def explain_slow(profiles: Profiles | None, step: Pass, entry: dict[str, Any], cpu: dict[str, Any],
                 before: Artifact, after: Artifact, bench: dict[str, Any], speedup: float,
                 against: str = "parent") -> str:
    """The reason a warning gives for ``after`` being slower than ``before`` on ``bench``'s target and batch.

    With profiles (a run), both are profiled and the difference is written into ``entry`` as ``profile``;
    without (no run context) or where the runtime has no profiler, the pass's fixed sentence, saying why.
    """
    from compressor.measure.profile import profiler_of

    target, batch = f"{bench['runtime']}:{bench['device']}", bench["batch_size"]
    fixed = f"likely reason: {step.slow_reason(entry, cpu)}"
    if profiles is None:
        return fixed
    if profiler_of(bench["runtime"]) is None:
        return f"no per-operator profiler for {target} here; {fixed}"
    try:
        found = op_diff(profiles.take(before, target, batch), profiles.take(after, target, batch))
    except CompressorError as exc:
        return f"the per-operator profile failed ({first_line(exc, 200)}); {fixed}"
    found = {"target": target, "batch_size": batch, "against": against, "speedup": round(speedup, 3), **found}
    _record(entry, found)
    return describe(found)


def _mac_share_removed(report: dict[str, Any]) -> float | None:
    before, after = report.get("macs_before"), report.get("macs_after")
    if not before or after is None:
        return None
    return 1.0 - after / before


def mac_shortfalls(profiles: Profiles | None, outcome: Any, checks: list[dict[str, Any]],
                   cpu: dict[str, Any]) -> list[str]:
    """Warnings for steps that removed at least ``MAC_DROP`` of the MACs yet gained less than ``MAC_GAIN``
    (the whole interval below it, where the check has one), explained from the profile. A check already
    flagged slower is left to that warning."""
    warnings = []
    for c in checks:
        i = c["step"] - 1
        entry = outcome.ledger[i]
        removed = _mac_share_removed(entry.get("report") or {})
        if removed is None or removed < MAC_DROP or c.get("verdict") in ("slower", "inconclusive"):
            continue
        high = c["interval"][1] if c.get("interval") else c["speedup"]
        if high >= MAC_GAIN or ("verdict" not in c and c["speedup"] < 0.95):
            continue
        bench = {"runtime": c["target"].partition(":")[0], "device": c["target"].partition(":")[2],
                 "batch_size": c["batch_size"]}
        reason = explain_slow(profiles, outcome.passes[i], entry, cpu, outcome.chain[i], outcome.chain[i + 1],
                              bench, c["speedup"])
        warnings.append(
            f"gains much less than its MAC reduction predicts: step {c['step']} ({entry['pass']}) removed "
            f"{removed:.0%} of the MACs but runs at {c['speedup']:.2f}x its input's speed on {c['target']} batch "
            f"{c['batch_size']} (p50 {c['p50_ms']:.3g} ms vs {c['parent_p50_ms']:.3g} ms); {reason}")
    return warnings
