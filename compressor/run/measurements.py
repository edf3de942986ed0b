"""Which artifacts to measure on which targets, through the one harness.

Every final variant and the reference are measured on every target that can run their format.
The input of each step whose speed is compared (quantize, prune, optimize, distill) is measured
too, so the report can say whether the step made the model faster on that target.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from compressor.artifact import Artifact
from compressor.cache import cache_key
from compressor.errors import CompressorError
from compressor.run.context import RunContext
from compressor.run.step import VariantOutcome

BENCH_FIELDS = ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "cv", "robust_cv", "throughput_per_s", "cold_start_ms",
                "peak_rss_mb", "p50_low_ms", "p50_high_ms")


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


MEASUREMENT_VERSION = 3  # 2: the p50's 95% interval; 3: robust cv, the noise guard; bump when a figure's meaning changes


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


@dataclass(frozen=True)
class MeasureJob:
    """One measurement: an artifact on a target (parsed, with its runtime) at a batch size."""

    artifact: Artifact
    target: Any
    runtime: Any
    batch: int

    @property
    def target_text(self) -> str:
        return str(self.target)


def timing_settings(ctx: RunContext) -> Any:
    """The pipeline's timing loop settings."""
    from compressor.measure.timing import TimingSettings

    spec = ctx.spec.benchmark
    return TimingSettings(spec.warmup_runs, spec.warmup_seconds, spec.min_runs, spec.min_seconds, spec.max_seconds)


def bench_samples(ctx: RunContext) -> Any:
    """The samples every measurement feeds (a Split: its constants and batch axes are fed too)."""
    return ctx.data.split("evaluation").take(64)


def fresh_entry(ctx: RunContext, job: MeasureJob, settings: Any, samples: Any) -> dict[str, Any]:
    """Time ``job`` now through the harness (a fresh process, again while its spread stays above the pipeline's
    ``max_cv``); the benchmark row without its metric."""
    from compressor.measure.harness import measure

    spec = ctx.spec.benchmark

    def take() -> dict[str, Any]:
        raw = measure(job.artifact, job.target.runtime, job.target.device, job.batch, spec.threads,
                      settings, samples, trust=ctx.trust)
        entry = {k: raw[k] for k in ("runtime", "device", "batch_size", "threads")}
        entry.update({k: round(float(raw[k]), 4) for k in BENCH_FIELDS})
        return entry

    return guarded(take, spec.max_cv, spec.max_remeasure)  # the noise guard


def error_entry(ctx: RunContext, job: MeasureJob, exc: Exception) -> dict[str, Any]:
    """The benchmark row of a measurement that failed: its target and the reason."""
    return {"runtime": job.target.runtime, "device": job.target.device, "batch_size": job.batch,
            "threads": ctx.spec.benchmark.threads, "error": str(exc)}


def measure_locally(ctx: RunContext, jobs: list[MeasureJob], remeasure: bool = False) -> list[dict[str, Any]]:
    """Each job's benchmark row, measured on this machine one after the other (or taken from the cache)."""
    from compressor.measure.environment import machine_fingerprint

    settings, samples, machine = timing_settings(ctx), bench_samples(ctx), machine_fingerprint()
    rows = []
    for n, job in enumerate(jobs, 1):
        ctx.on_event("bench", index=n, total=len(jobs), target=job.target_text, batch=job.batch, artifact=job.artifact.id)
        try:
            key = measurement_key(ctx, job.artifact, job.target_text, job.batch, settings, machine)
            entry, cached = ctx.cache.memo("bench", key, lambda job=job: fresh_entry(ctx, job, settings, samples),
                                           refresh=remeasure)
            entry["cached"] = cached
            entry["metric"], _ = ctx.metric_of(job.artifact, job.target_text)
        except CompressorError as exc:
            entry = error_entry(ctx, job, exc)
        rows.append(entry)
    return rows


def collect(ctx: RunContext, outcomes: list[VariantOutcome], remeasure: bool = False,
            measure_jobs: Callable[..., list[dict]] = measure_locally) -> tuple[dict[str, list[dict]], list[dict]]:
    """Benchmark entries per artifact sha256, and the targets skipped; a failed measurement is a row with its error.

    A measurement taken before on this machine with the same settings is reused (``"cached": true``)
    unless ``remeasure``; failed measurements are never cached. ``measure_jobs`` runs the jobs
    (this process by default; an executor's own, e.g. Ray tasks on the nodes with the hardware).
    """
    targets, skipped = usable_targets(ctx.spec.targets)
    jobs = [MeasureJob(a, t, rt, b) for a in artifacts_to_measure(ctx, outcomes) for t, rt in targets
            if rt.can_run(a.format) for b in ctx.spec.benchmark.batch_sizes]
    results: dict[str, list[dict]] = {}
    for job, entry in zip(jobs, measure_jobs(ctx, jobs, remeasure)):
        if job.target.resource:  # the Ray resource its node advertises (executor: ray)
            entry["resource"] = job.target.resource
        results.setdefault(job.artifact.sha256, []).append(entry)
    for o in outcomes:  # each ledger step carries the measurements of the artifact it made
        for i, step in enumerate(o.ledger):
            if o.chain[i + 1].sha256 in results:
                step["benchmarks"] = results[o.chain[i + 1].sha256]
    return results, skipped
