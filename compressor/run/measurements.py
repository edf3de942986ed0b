"""Which artifacts to measure on which targets, through the one harness.

Every final variant and the reference are measured on every target that can run their format.
The input of each step whose speed is compared (quantize, prune, optimize, distill) is measured
too, so the report can say whether the step made the model faster on that target.
"""
from __future__ import annotations

from typing import Any

from compressor.artifact import Artifact
from compressor.cache import cache_key
from compressor.errors import CompressorError
from compressor.run.context import RunContext
from compressor.run.step import VariantOutcome

BENCH_FIELDS = ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "cv", "robust_cv", "throughput_per_s", "cold_start_ms",
                "peak_rss_mb")


def artifacts_to_measure(ctx: RunContext, outcomes: list[VariantOutcome]) -> list[Artifact]:
    """The reference, each variant's result, and the input of every step whose speed is compared."""
    seen: dict[str, Artifact] = {ctx.reference.sha256: ctx.reference}
    every_step = ctx.spec.benchmark.ledger_steps
    for o in outcomes:
        for i, p in enumerate(o.passes[:len(o.ledger)]):
            if p.compares_speed or every_step:
                seen.setdefault(o.chain[i].sha256, o.chain[i])
        if o.artifact is not None:
            seen.setdefault(o.artifact.sha256, o.artifact)
    return list(seen.values())


def usable_targets(targets: list[str]) -> tuple[list[Any], list[dict[str, str]]]:
    """The targets this machine can run, and the skipped ones with the reason."""
    from backends import get_runtime, parse_target

    usable, skipped = [], []
    for text in targets:
        target = parse_target(text)
        runtime = get_runtime(target.runtime)
        if not runtime.is_available():
            skipped.append({"target": text, "reason": f"{target.runtime} is not installed ({runtime.install_hint})"})
        elif target.device not in runtime.available_devices():
            skipped.append({"target": text, "reason": f"no {target.device} device for {target.runtime} on this machine"})
        else:
            usable.append((target, runtime))
    return usable, skipped


MEASUREMENT_VERSION = 2  # bump when the harness changes what a figure means


def measurement_key(ctx: RunContext, artifact: Artifact, target: str, batch: int, settings: Any,
                    machine: dict[str, Any]) -> str:
    """A measurement's cache key: artifact content, target, batch, threads, timing settings, samples, machine."""
    from dataclasses import asdict

    guard = [ctx.spec.benchmark.max_cv, ctx.spec.benchmark.max_remeasure]
    return cache_key("bench", MEASUREMENT_VERSION, artifact.sha256, target, batch, ctx.spec.benchmark.threads,
                     asdict(settings), guard, ctx.data.fingerprint("evaluation"), machine)


def machine_load() -> float:
    """The 1-minute load average per CPU (1.0: as many runnable processes as cores)."""
    import os

    try:
        return round(os.getloadavg()[0] / (os.cpu_count() or 1), 3)
    except OSError:
        return -1.0


def guarded(take: Any, max_cv: float, max_remeasure: int) -> dict[str, Any]:
    """The noise guard: a measurement (``take()`` -> entry with ``robust_cv``) whose spread is above ``max_cv``
    is taken again, at most ``max_remeasure`` times; the steadiest is kept, with the load it ran under,
    how many extra measurements were taken and whether it stayed unstable."""
    best, extra = None, 0
    while True:
        load = machine_load()
        entry = take()
        entry["load"] = load
        if best is None or entry["robust_cv"] < best["robust_cv"]:
            best = entry
        if best["robust_cv"] <= max_cv or extra >= max_remeasure:
            break
        extra += 1
    best.update(remeasured=extra, unstable=best["robust_cv"] > max_cv)
    return best


def collect(ctx: RunContext, outcomes: list[VariantOutcome],
            remeasure: bool = False) -> tuple[dict[str, list[dict]], list[dict]]:
    """Benchmark entries per artifact sha256, and the targets skipped; a failed measurement is a row with its error.

    A measurement taken before on this machine with the same settings is reused (``"cached": true``)
    unless ``remeasure``; failed measurements are never cached.
    """
    from compressor.measure.environment import machine_fingerprint
    from compressor.measure.harness import measure
    from compressor.measure.timing import TimingSettings

    spec = ctx.spec.benchmark
    targets, skipped = usable_targets(ctx.spec.targets)
    settings = TimingSettings(spec.warmup_runs, spec.warmup_seconds, spec.min_runs, spec.min_seconds, spec.max_seconds)
    samples = ctx.data.split("evaluation").take(64)  # a Split: its constants and batch axes are fed too
    machine = machine_fingerprint()
    jobs = [(a, t, rt, b) for a in artifacts_to_measure(ctx, outcomes) for t, rt in targets
            if rt.can_run(a.format) for b in spec.batch_sizes]
    results: dict[str, list[dict]] = {}
    for n, (artifact, target, runtime, batch) in enumerate(jobs, 1):
        ctx.on_event("bench", index=n, total=len(jobs), target=str(target), batch=batch, artifact=artifact.id)

        def fresh(artifact: Artifact = artifact, target: Any = target, batch: int = batch) -> dict[str, Any]:
            raw = measure(artifact, target.runtime, target.device, batch, spec.threads, settings, samples,
                          trust=ctx.trust)
            entry = {k: raw[k] for k in ("runtime", "device", "batch_size", "threads")}
            entry.update({k: round(float(raw[k]), 4) for k in BENCH_FIELDS})
            return entry

        def steady(take: Any = fresh) -> dict[str, Any]:
            return guarded(take, spec.max_cv, spec.max_remeasure)

        try:
            key = measurement_key(ctx, artifact, str(target), batch, settings, machine)
            entry, cached = ctx.cache.memo("bench", key, steady, refresh=remeasure)
            entry["cached"] = cached
            entry["metric"], _ = ctx.metric_of(artifact, str(target))
        except CompressorError as exc:
            entry = {"runtime": target.runtime, "device": target.device, "batch_size": batch,
                     "threads": spec.threads, "error": str(exc)}
        results.setdefault(artifact.sha256, []).append(entry)
    for o in outcomes:  # each ledger step carries the measurements of the artifact it made
        for i, step in enumerate(o.ledger):
            if o.chain[i + 1].sha256 in results:
                step["benchmarks"] = results[o.chain[i + 1].sha256]
    return results, skipped
