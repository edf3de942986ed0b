"""A run's paired comparisons: every pair a speed check reads, measured in interleaved rounds.

The pairs come from ``speed.pairs_to_compare``; a pair is measured on each target and batch where both
of its artifacts have a single measurement. All pairs of one target and batch share their rounds: an
artifact that is the input of several steps (the fp32 model of three int8 variants) is measured once
per round and serves every pair it is in. Each round is a fresh worker process per artifact, on the
run's evaluation samples, with a shorter timed window than a single measurement
(``round_settings``). A pair's record is cached under both artifacts' sha256, target, batch, threads,
the timing and pairing settings, the samples and the machine; ``remeasure`` takes fresh rounds.
"""
from __future__ import annotations

from dataclasses import asdict
from typing import Any

from compressor.artifact import Artifact
from compressor.cache import cache_key
from compressor.errors import CompressorError
from compressor.measure.paired import PairedSettings, paired_rounds
from compressor.measure.timing import TimingSettings
from compressor.run.context import RunContext
from compressor.run.speed import Paired, pairs_to_compare
from compressor.run.step import VariantOutcome

PAIRED_VERSION = 1  # bump when what a paired record means changes


def round_settings(spec: Any) -> TimingSettings:
    """One round's timing: the pipeline's settings with the timed window cut to ``round_seconds``."""
    return TimingSettings(warmup_runs=min(spec.warmup_runs, 5), warmup_seconds=min(spec.warmup_seconds, 0.05),
                          min_runs=min(spec.min_runs, 20), min_seconds=min(spec.min_seconds, spec.round_seconds),
                          max_seconds=spec.max_seconds)


def paired_settings(spec: Any) -> PairedSettings:
    """The pipeline's ``benchmark.rounds`` / ``max_rounds`` / ``min_effect``."""
    return PairedSettings(rounds=spec.rounds, max_rounds=spec.max_rounds, min_effect=spec.min_effect)


def _planned(outcomes: list[VariantOutcome], benches: dict[str, list[dict]]) -> dict[tuple[str, int], list]:
    """Pairs per (target, batch), where both artifacts were measured there without error."""
    plan: dict[tuple[str, int], list[tuple[str, str]]] = {}
    for before, after in pairs_to_compare(outcomes):
        mine = {(b["runtime"], b["device"], b["batch_size"]) for b in benches.get(before, []) if "p50_ms" in b}
        for b in benches.get(after, []):
            if "p50_ms" in b and (b["runtime"], b["device"], b["batch_size"]) in mine:
                plan.setdefault((f"{b['runtime']}:{b['device']}", b["batch_size"]), []).append((before, after))
    return plan


def collect_paired(ctx: RunContext, outcomes: list[VariantOutcome], benches: dict[str, list[dict]],
                   remeasure: bool = False) -> Paired:
    """Paired records per (before sha256, after sha256, target, batch); a failed group's pairs hold its error."""
    from backends import parse_target
    from compressor.measure.environment import machine_fingerprint

    spec = ctx.spec.benchmark
    timing, pairing = round_settings(spec), paired_settings(spec)
    artifacts = {a.sha256: a for o in outcomes for a in o.chain}
    samples = ctx.data.split("evaluation").take(64)
    machine = machine_fingerprint()
    found: Paired = {}
    for (target, batch), pairs in _planned(outcomes, benches).items():
        keys = {p: cache_key("paired", PAIRED_VERSION, *p, target, batch, spec.threads, asdict(timing),
                             asdict(pairing), ctx.data.fingerprint("evaluation"), machine) for p in pairs}
        todo = []
        for p in pairs:
            hit = None if remeasure else ctx.cache.get_json("paired", keys[p])
            if hit is None:
                todo.append(p)
            else:
                found[(*p, target, batch)] = {**hit, "cached": True}
        if not todo:
            continue
        t = parse_target(target)
        counter = iter(range(1, 10**6))

        def one(sha: str, t: Any = t, batch: int = batch) -> float:
            from compressor.measure.harness import measure

            artifact: Artifact = artifacts[sha]
            ctx.on_event("paired", index=next(counter), target=str(t), batch=batch, artifact=artifact.id)
            return float(measure(artifact, t.runtime, t.device, batch, spec.threads, timing, samples,
                                 trust=ctx.trust)["p50_ms"])

        try:
            measured = paired_rounds(one, todo, pairing)
        except CompressorError as exc:
            for p in todo:
                found[(*p, target, batch)] = {"error": str(exc)}
            continue
        for p, record in measured.items():
            found[(*p, target, batch)] = {**ctx.cache.put_json("paired", keys[p], record), "cached": False}
    return found
