"""The runner: variants through the cache, verification after every pass, then measurement.

Each variant is an independent job: an ordered list of passes applied to the reference artifact.
Shared prefixes are computed once because every pass result is content-addressed. After each pass
the runner checks parity against the parent (conversions) and evaluates the metric (every
artifact), and records both in the variant's ledger. Measurements go through ``benchmarks``.
"""
from __future__ import annotations

import logging
import shutil
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from compressor.artifact import Artifact, Lineage, content_sha256, gzip_size
from compressor.cache import Cache, atomic_write_text, cache_key
from compressor.data import DataBundle, load_bundle
from compressor.errors import CompressorError, VerificationError
from compressor.evaluate import Evaluator
from compressor.metrics import get_metric
from compressor.passes.base import Pass, PassContext
from compressor.pipeline import Pipeline

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
# format -> "module:function(path, input_shapes) -> dict": int8 coverage of quantized artifacts
COVERAGE = {"onnx": "compressor.inspect._onnx:coverage"}
SUFFIX = {"onnx": ".onnx", "ort": ".ort", "tflite": ".tflite", "keras": ".keras", "torch_export": ".pt2"}

Event = Callable[..., None]


def _quiet(kind: str, **info: Any) -> None:
    log.info("%s %s", kind, info)


@dataclass
class StepResult:
    artifact: Artifact
    entry: dict[str, Any]


@dataclass
class VariantOutcome:
    name: str
    passes: list[str]
    artifact: Artifact | None = None
    ledger: list[dict[str, Any]] = field(default_factory=list)
    chain: list[Artifact] = field(default_factory=list)  # reference, then each pass's output
    error: str | None = None
    traceback: str | None = None  # for failures that were not CompressorErrors (bugs, library errors)
    bad_input: bool = False  # a pass refused its input in check(), before any work


class Runner:
    """Runs one pipeline into an output folder."""

    def __init__(self, pipeline: Pipeline, out_dir: Path, cache_dir: Path | None = None,
                 on_event: Event = _quiet, benchmark: bool = True) -> None:
        self.pipeline = pipeline
        self.spec = pipeline.spec
        self.out_dir = Path(out_dir)
        self.cache = Cache(cache_dir or self.out_dir / "cache")
        self.on_event = on_event
        self.do_benchmark = benchmark
        self.metric = get_metric(self.spec.metric)
        self.data: DataBundle | None = None
        self.evaluator: Evaluator | None = None
        self.reference: Artifact | None = None
        self.reference_metric: float | None = None

    # ------------------------------------------------------------------ reference
    def load_reference(self) -> Artifact:
        from compressor.model_import import import_file, import_torch_factory

        model = self.spec.model
        if model.factory:
            inputs = self.data.split("evaluation").inputs
            sample = inputs if len(inputs) > 1 else next(iter(inputs.values()))
            return import_torch_factory(model, self.pipeline.resolve, sample, self.cache)
        return import_file(self.pipeline.resolve(model.path), self.cache)

    def metric_of(self, artifact: Artifact, target: str | None = None) -> tuple[float, bool]:
        """The metric of ``artifact`` (on its default runtime, or on ``target``), memoized."""
        from backends import get_runtime, parse_target

        eval_fp = self.data.fingerprint("evaluation")
        ref = self.reference.sha256 if not self.metric.needs_labels else None
        key = cache_key("metric", artifact.sha256, self.spec.metric, eval_fp, ref, target)

        def compute() -> float:
            if target is None:
                return self.evaluator.evaluate(artifact)
            t = parse_target(target)
            return self.evaluator.evaluate(artifact, get_runtime(t.runtime), t.device)

        return self.cache.memo("metric", key, compute)

    # ------------------------------------------------------------------ passes
    def pass_key(self, parent: Artifact, p: Pass) -> str:
        data = {role: self.data.fingerprint(role, needed_by=f"pass '{p.name}'") for role in p.data_splits}
        config = p.config.model_dump(mode="json")
        parts = ["pass", parent.sha256, p.name, p.version, config, data, self.spec.seed]
        if getattr(p, "uses_budget", False):  # accuracy-aware passes aim at the budget and reference
            parts += [self.spec.budget.max_drop, self.reference_metric]
        return cache_key(*parts)

    def apply(self, parent: Artifact, p: Pass, variant: str, index: int) -> StepResult:
        key = self.pass_key(parent, p)
        config = p.config.model_dump(mode="json", exclude_defaults=True)
        hit = self.cache.get(key)
        if hit is not None:
            artifact, record = hit
        else:
            self.on_event("pass_start", variant=variant, index=index, name=p.name)
            ctx = PassContext(self.data, self.evaluator, seed=self.spec.seed, max_drop=self.spec.budget.max_drop,
                              reference_metric=self.reference_metric,
                              progress=lambda msg: self.on_event("pass_progress", variant=variant, name=p.name, message=msg))
            try:
                p.check(parent, ctx)
            except CompressorError as exc:
                exc.bad_input = True  # refused before any work: the input or the config is wrong
                raise
            with self.cache.staging() as tmp:
                (tmp / "out").mkdir()
                (tmp / "work").mkdir()
                ctx.work_dir = tmp / "work"
                start = time.perf_counter()
                output = p.run(parent, ctx, tmp / "out")
                seconds = time.perf_counter() - start
                shutil.rmtree(tmp / "work", ignore_errors=True)
                lineage = Lineage(parent=parent.id, pass_name=p.name, pass_config=config, seconds=round(seconds, 3))
                out_format = p.produces(parent.format)
                artifact = Artifact(out_format, output.path, output.signature, content_sha256(output.path),
                                    lineage, output.meta)
                record = {"seconds": round(seconds, 3), "report": output.report}
                artifact = self.cache.commit(key, tmp, artifact, record)
        entry = {
            "pass": p.name, "config": config, "format_in": parent.format.value,
            "format_out": artifact.format.value, "artifact": artifact.id,
            "size_bytes": artifact.size_bytes, "seconds": record["seconds"],
            "cache_hit": hit is not None, "report": record.get("report", {}),
        }
        entry["parity"] = self.check_parity(parent, artifact, p) if p.is_conversion else None
        if p.name.startswith("quantize.") and artifact.format.value in COVERAGE:
            entry["coverage"] = self.coverage_of(artifact)
        value, _ = self.metric_of(artifact)
        entry["metric"] = value
        entry["metric_drop"] = self.metric.drop(self.reference_metric, value)
        entry["within_budget"] = entry["metric_drop"] <= self.spec.budget.max_drop
        self.on_event("pass_done", variant=variant, index=index, name=p.name, entry=entry)
        return StepResult(artifact, entry)

    def coverage_of(self, artifact: Artifact) -> dict[str, Any]:
        """Share of weights and MACs in int8 and the float compute left, shapes from one real sample."""
        from compressor.data import feeds_for
        from compressor.registry import load_attr

        sample = feeds_for(artifact.signature, self.data.split("evaluation").take(1).inputs)
        shapes = {name: list(arr.shape) for name, arr in sample.items()}
        return load_attr(COVERAGE[artifact.format.value])(Path(artifact.path), shapes)

    def check_parity(self, parent: Artifact, child: Artifact, p: Pass) -> dict[str, float]:
        key = cache_key("parity", parent.sha256, child.sha256, self.data.fingerprint("evaluation"))
        parity, _ = self.cache.memo("parity", key, lambda: self.evaluator.parity(parent, child).to_dict())
        tol = p.parity_tolerance()
        if tol is not None and not parity["max_abs_error"] <= tol:
            raise VerificationError(
                f"pass '{p.name}' output differs from its parent by max abs error "
                f"{parity['max_abs_error']:.3g} (> {tol:g} allowed, cosine {parity['cosine']:.6f}); "
                f"try another opset or exporter, or raise the pass's atol if this is expected."
            )
        return parity

    def run_variant(self, name: str, passes: list[Pass]) -> VariantOutcome:
        outcome = VariantOutcome(name, [p.name for p in passes], chain=[self.reference])
        current = self.reference
        self.on_event("variant_start", variant=name, steps=len(passes))
        try:
            for index, p in enumerate(passes):
                step = self.apply(current, p, name, index)
                current = step.artifact
                outcome.ledger.append(step.entry)
                outcome.chain.append(current)
            outcome.artifact = current
        except CompressorError as exc:
            outcome.error = f"step {len(outcome.ledger) + 1} ({passes[len(outcome.ledger)].name}): {exc}"
            outcome.bad_input = getattr(exc, "bad_input", False)
        except Exception as exc:  # a bug or a library failure: keep the other variants going
            log.debug("variant %s failed", name, exc_info=True)
            detail = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
            outcome.error = (f"step {len(outcome.ledger) + 1} ({passes[len(outcome.ledger)].name}) "
                             f"raised {type(exc).__name__}: {detail}")
            outcome.traceback = traceback.format_exc()
        self.on_event("variant_done", variant=name, error=outcome.error)
        return outcome

    # ------------------------------------------------------------------ main
    def run(self) -> dict[str, Any]:
        from benchmarks.environment import fingerprint

        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.on_event("stage", message="loading data")
        self.data = load_bundle(self.spec.data, self.pipeline.resolve)
        self.evaluator = Evaluator(self.data, self.metric)
        self.on_event("stage", message="loading the input model")
        self.reference = self.load_reference()
        self.evaluator.set_reference(self.reference)
        self.reference_metric, _ = self.metric_of(self.reference)
        outcomes = [self.run_variant(n, ps) for n, ps in self.pipeline.variants.items()]
        benches, skipped = ({}, [])
        if self.do_benchmark:
            from compressor.measurements import Measurements

            benches, skipped = Measurements(self).collect(outcomes)
        results = self.results(outcomes, benches, skipped, fingerprint())
        self.write(results, outcomes)
        return results

    def results(self, outcomes: list[VariantOutcome], benches: dict, skipped: list[dict], env: dict) -> dict[str, Any]:
        from compressor.measurements import speed_checks

        ref = self.reference
        variants = []
        for o in outcomes:
            v: dict[str, Any] = {"name": o.name, "passes": o.passes, "ledger": o.ledger, "status": "ok"}
            if o.error:
                v.update(status="failed", error=o.error)
                if o.bad_input:
                    v["bad_input"] = True
            if o.artifact is not None:
                a = o.artifact
                value = o.ledger[-1]["metric"] if o.ledger else self.reference_metric
                v.update(
                    artifact={"format": a.format.value, "path": self.export_path(o.name, a), "size_bytes": a.size_bytes,
                              "gzip_bytes": gzip_size(a.path), "sha256": a.sha256},
                    metric=value, metric_drop=self.metric.drop(self.reference_metric, value),
                )
                v["within_budget"] = v["metric_drop"] <= self.spec.budget.max_drop
                v["benchmarks"] = benches.get(a.sha256, [])
                v["speed_checks"], v["warnings"] = speed_checks(o, benches)
            else:
                v.update(metric=None, metric_drop=None, within_budget=False, benchmarks=[], warnings=[])
            variants.append(v)
        return {
            "schema": SCHEMA_VERSION,
            "pipeline": self.spec.name,
            "metric": {"name": self.metric.name, "higher_is_better": self.metric.higher_is_better},
            "budget": self.spec.budget.model_dump(),
            "reference": {"format": ref.format.value, "source": self.spec.model.path or self.spec.model.factory,
                          "size_bytes": ref.size_bytes, "gzip_bytes": gzip_size(ref.path), "sha256": ref.sha256,
                          "metric": self.reference_metric, "benchmarks": benches.get(ref.sha256, [])},
            "variants": variants,
            "skipped_targets": skipped,
            "environment": env,
        }

    def export_path(self, variant: str, artifact: Artifact) -> str:
        path = Path(artifact.path)
        own = path.suffix if path.is_file() else ""  # a Keras artifact may be .h5 or .keras
        return f"artifacts/{variant}{own or SUFFIX.get(artifact.format.value, '')}"

    def write(self, results: dict[str, Any], outcomes: list[VariantOutcome]) -> None:
        import json

        from compressor.report import write_reports

        for o in outcomes:
            if o.artifact is not None:
                _copy_atomic(Path(o.artifact.path), self.out_dir / self.export_path(o.name, o.artifact))
        atomic_write_text(self.out_dir / "results.json", json.dumps(results, indent=2, default=_json_default))
        write_reports(results, self.out_dir)


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def _copy_atomic(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()
    if src.is_dir():
        shutil.copytree(src, tmp)
    else:
        shutil.copyfile(src, tmp)
    if dst.is_dir():
        shutil.rmtree(dst)
    tmp.replace(dst)


def exit_code(results: dict[str, Any], strict: bool) -> int:
    """0 when every variant completed (and, with strict, at least one is within budget).

    2 when a pass refused its input before any work (bad input), 1 when a variant failed otherwise.
    """
    if any(v.get("bad_input") for v in results["variants"]):
        return 2
    if any(v["status"] != "ok" for v in results["variants"]):
        return 1
    if strict and not any(v["within_budget"] for v in results["variants"]):
        return 3
    return 0


def run_pipeline(pipeline: Pipeline, out_dir: Path, cache_dir: Path | None = None,
                 on_event: Event = _quiet, benchmark: bool = True) -> dict[str, Any]:
    """Run every variant of ``pipeline`` into ``out_dir``; return the results dict."""
    return Runner(pipeline, out_dir, cache_dir, on_event, benchmark).run()
