"""Which artifacts to measure on which targets, through the one harness.

Every final variant and the reference are measured on every target that can run their format.
The input of each step whose speed is compared (quantize, prune, optimize, distill) is measured
too, so the report can say whether the step made the model faster on that target.
"""
from __future__ import annotations

from typing import Any

from compressor.artifact import Artifact
from compressor.errors import CompressorError
from compressor.run.context import RunContext
from compressor.run.step import VariantOutcome

BENCH_FIELDS = ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "cv", "throughput_per_s", "cold_start_ms", "peak_rss_mb")


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


def collect(ctx: RunContext, outcomes: list[VariantOutcome]) -> tuple[dict[str, list[dict]], list[dict]]:
    """Benchmark entries per artifact sha256, and the targets skipped; a failed measurement is a row with its error."""
    from compressor.measure.harness import measure
    from compressor.measure.timing import TimingSettings

    spec = ctx.spec.benchmark
    targets, skipped = usable_targets(ctx.spec.targets)
    settings = TimingSettings(spec.warmup_runs, spec.warmup_seconds, spec.min_runs, spec.min_seconds, spec.max_seconds)
    samples = ctx.data.split("evaluation").take(64)  # a Split: its constants and batch axes are fed too
    jobs = [(a, t, rt, b) for a in artifacts_to_measure(ctx, outcomes) for t, rt in targets
            if rt.can_run(a.format) for b in spec.batch_sizes]
    results: dict[str, list[dict]] = {}
    for n, (artifact, target, runtime, batch) in enumerate(jobs, 1):
        ctx.on_event("bench", index=n, total=len(jobs), target=str(target), batch=batch, artifact=artifact.id)
        try:
            raw = measure(artifact, target.runtime, target.device, batch, spec.threads, settings, samples,
                          trust=ctx.trust)
            entry = {k: raw[k] for k in ("runtime", "device", "batch_size", "threads")}
            entry.update({k: round(float(raw[k]), 4) for k in BENCH_FIELDS})
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
