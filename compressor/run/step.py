"""One step of a variant: a pass applied through the cache, then verified and recorded.

After each pass the step checks parity against the parent (conversions) and evaluates the metric
(every artifact), and returns the ledger entry. A variant is its steps in order; shared prefixes
are computed once because every pass result is content-addressed.
"""
from __future__ import annotations

import logging
import shutil
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compressor.artifact import Artifact, Lineage, content_sha256
from compressor.cache import cache_key
from compressor.errors import (
    CompressorError,
    InputRefused,
    PassError,
    VerificationError,
    first_line,
)
from compressor.formats import Format
from compressor.frameworks import format_info
from compressor.passes.base import Pass, PassOutput
from compressor.run.context import RunContext

if TYPE_CHECKING:
    from compressor.run.pipeline import Pipeline

log = logging.getLogger(__name__)


@dataclass
class StepResult:
    artifact: Artifact
    entry: dict[str, Any]


@dataclass
class VariantOutcome:
    name: str
    passes: list[Pass]
    artifact: Artifact | None = None
    ledger: list[dict[str, Any]] = field(default_factory=list)
    chain: list[Artifact] = field(default_factory=list)  # reference, then each pass's output
    error: str | None = None
    traceback: str | None = None  # for failures that were not CompressorErrors (bugs, library errors)
    refused: bool = False  # a pass refused its input in check(), before any work

    @property
    def pass_names(self) -> list[str]:
        return [p.name for p in self.passes]


@contextmanager
def refusing(prefix: str = "") -> Iterator[None]:
    """A CompressorError raised in the block (before any work) is a refusal: ``InputRefused``, exit 2."""
    try:
        yield
    except InputRefused as exc:
        if prefix:
            raise InputRefused(prefix + str(exc)) from exc
        raise
    except CompressorError as exc:
        raise InputRefused(prefix + str(exc)) from exc


def pass_key(ctx: RunContext, parent: Artifact, p: Pass) -> str:
    """The cache key of ``p`` on ``parent``: input content, pass, version, config, data, seed (and training threads)."""
    data = {role: ctx.data.fingerprint(role, needed_by=f"pass '{p.name}'") for role in p.reads()}
    config = p.config.model_dump(mode="json")
    for name, value in p.key_neutral.items():  # e.g. one training worker trains as before: the key stays
        if name in config and config[name] == value:
            del config[name]
    parts = ["pass", parent.sha256, p.name, p.version, config, data, ctx.spec.seed]
    if "training" in p.reads():  # training's numbers depend on its thread count (passes/_torch_fit.py)
        from compressor.passes._torch_fit import training_threads

        parts.append({"training_threads": training_threads()})
    if p.uses_budget():  # accuracy-aware passes aim at the budget and the reference
        parts += [ctx.budget.absolute(ctx.reference_metric), ctx.reference_metric]
    if p.measures_speed():  # its choice is made from timings: this machine's, at these batch sizes, on this target
        from compressor.measure.environment import machine_fingerprint

        timed = {"batch_sizes": ctx.spec.benchmark.batch_sizes, "machine": machine_fingerprint()}
        target = ctx.pass_context("", p.name).target
        if target != "onnxruntime:cpu":  # the key of a choice measured on ORT CPU stays as before
            timed["target"] = target
        parts.append(timed)
    return cache_key(*parts)


def _run_pass(ctx: RunContext, parent: Artifact, p: Pass, variant: str, key: str, config: dict) -> tuple[Artifact, dict]:
    pctx = ctx.pass_context(variant, p.name)
    with refusing():
        p.check(parent, pctx)
    with ctx.cache.staging() as tmp:
        (tmp / "out").mkdir()
        (tmp / "work").mkdir()
        pctx.work_dir = tmp / "work"
        start = time.perf_counter()
        output = p.run(parent, pctx, tmp / "out")
        seconds = time.perf_counter() - start
        shutil.rmtree(tmp / "work", ignore_errors=True)
        lineage = Lineage(parent=parent.id, pass_name=p.name, pass_config=config, seconds=round(seconds, 3))
        artifact = Artifact(written_format(p, parent, output), output.path, output.signature, content_sha256(output.path),
                            lineage, output.meta)
        record = {"seconds": round(seconds, 3), "report": output.report}
        return ctx.cache.commit(key, tmp, artifact, record), record


def written_format(p: Pass, parent: Artifact, output: PassOutput) -> Format:
    """The format ``p`` wrote: its one output format, or the one it says among those it declares."""
    allowed = p.output_formats(parent.format)
    fmt = output.format or p.produces(parent.format)
    if fmt not in allowed:
        raise PassError(f"pass '{p.name}' wrote a '{fmt.value}' model but declares {sorted(f.value for f in allowed)}; "
                        f"this is a bug in the pass.")
    return fmt


def apply_pass(ctx: RunContext, parent: Artifact, p: Pass, variant: str, index: int) -> StepResult:
    """Apply ``p`` to ``parent`` (or take it from the cache), verify it, and build its ledger entry."""
    from compressor.run.pipeline import pass_code

    # model folders name code: only what the pipeline (or this pass's config) named, or --trust-code
    with ctx.trusted(*pass_code(p)):
        return _apply_pass(ctx, parent, p, variant, index)


def _apply_pass(ctx: RunContext, parent: Artifact, p: Pass, variant: str, index: int) -> StepResult:
    with refusing():
        key = pass_key(ctx, parent, p)  # reads the data splits the pass needs: an empty one is bad input
    config = p.config.model_dump(mode="json", exclude_defaults=True)
    hit = ctx.cache.get(key)
    if hit is not None:
        artifact, record = hit
    else:
        ctx.on_event("pass_start", variant=variant, index=index, name=p.name)
        artifact, record = _run_pass(ctx, parent, p, variant, key, config)
    entry = {
        "pass": p.name, "config": config, "format_in": parent.format.value,
        "format_out": artifact.format.value, "artifact": artifact.id,
        "size_bytes": artifact.size_bytes, "seconds": record["seconds"],
        "cache_hit": hit is not None, "report": record.get("report", {}),
    }
    entry["parity"] = check_parity(ctx, parent, artifact, p) if p.is_conversion else None
    if p.quantizes and format_info(artifact.format).coverage:
        entry["coverage"] = coverage_of(ctx, artifact)
    value, _ = ctx.metric_of(artifact)
    entry["metric"] = value
    entry["metric_drop"] = ctx.metric.drop(ctx.reference_metric, value)
    entry["within_budget"] = ctx.budget.allows(entry["metric_drop"], ctx.reference_metric)
    ctx.on_event("pass_done", variant=variant, index=index, name=p.name, entry=entry)
    return StepResult(artifact, entry)


def coverage_of(ctx: RunContext, artifact: Artifact) -> dict[str, Any]:
    """Share of weights and MACs in int8 and the float compute left, shapes from one real sample."""
    from compressor.code import load_attr
    from compressor.data import feeds_for

    sample = feeds_for(artifact.signature, ctx.data.split("evaluation").take(1))  # with its constants
    shapes = {name: list(arr.shape) for name, arr in sample.items()}
    return load_attr(format_info(artifact.format).coverage)(Path(artifact.path), shapes)


def check_parity(ctx: RunContext, parent: Artifact, child: Artifact, p: Pass) -> dict[str, float]:
    """Max abs error and cosine of ``child`` against ``parent``; an error past the pass's tolerance."""
    key = cache_key("parity", parent.sha256, child.sha256, ctx.data.fingerprint("evaluation"))
    parity, _ = ctx.cache.memo("parity", key, lambda: ctx.evaluator.parity(parent, child).to_dict())
    tol = p.parity_tolerance()
    if tol is not None and not parity["max_abs_error"] <= tol:
        raise VerificationError(
            f"pass '{p.name}' output differs from its parent by max abs error "
            f"{parity['max_abs_error']:.3g} (> {tol:g} allowed, cosine {parity['cosine']:.6f}); "
            f"try another opset or exporter, or raise the pass's atol if this is expected."
        )
    return parity


def refuse_early(ctx: RunContext, pipeline: Pipeline) -> None:
    """Every variant's first pass checks the reference before any work: bad input stops the run whole.

    Later steps can only be checked once the steps before them have run; they refuse in their turn.
    """
    from compressor.run.pipeline import pass_code

    for name, passes in pipeline.variants.items():
        if not passes:
            continue
        p = passes[0]
        with refusing(f"variant '{name}' step 1 ({p.name}): "), ctx.trusted(*pass_code(p)):
            pass_key(ctx, ctx.reference, p)  # the data splits it reads exist and are not empty
            p.check(ctx.reference, ctx.pass_context(name, p.name))


def run_variant(ctx: RunContext, name: str, passes: list[Pass]) -> VariantOutcome:
    """Every step of one variant in order; a failure ends the variant, not the run."""
    outcome = VariantOutcome(name, list(passes), chain=[ctx.reference])
    current = ctx.reference
    ctx.on_event("variant_start", variant=name, steps=len(passes))
    try:
        for index, p in enumerate(passes):
            step = apply_pass(ctx, current, p, name, index)
            current = step.artifact
            outcome.ledger.append(step.entry)
            outcome.chain.append(current)
        outcome.artifact = current
    except CompressorError as exc:
        outcome.error = f"step {len(outcome.ledger) + 1} ({passes[len(outcome.ledger)].name}): {exc}"
        outcome.refused = isinstance(exc, InputRefused)
    except Exception as exc:  # a bug or a library failure: keep the other variants going
        log.debug("variant %s failed", name, exc_info=True)
        detail = first_line(exc) if str(exc).strip() else ""
        outcome.error = (f"step {len(outcome.ledger) + 1} ({passes[len(outcome.ledger)].name}) "
                         f"raised {type(exc).__name__}: {detail}")
        outcome.traceback = traceback.format_exc()
    ctx.on_event("variant_done", variant=name, error=outcome.error)
    return outcome
