"""A run's frozen context: what every step, measurement and result of one run reads.

``prepare(pipeline)`` loads the data, builds the evaluator, imports the input model as the
reference artifact and scores it. Steps, measurements and results receive the context; nobody
reaches into a runner. Tests build their context with the same function.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compressor.artifact import Artifact
from compressor.cache import Cache, cache_key
from compressor.data import DataBundle, load_bundle
from compressor.measure.evaluate import Evaluator
from compressor.metrics import Metric, get_metric
from compressor.passes.base import PassContext

if TYPE_CHECKING:
    from compressor.run.pipeline import BudgetSpec, Pipeline, PipelineSpec

log = logging.getLogger(__name__)

Event = Callable[..., None]


def quiet(kind: str, **info: Any) -> None:
    """The default event sink: progress goes to the log only."""
    log.info("%s %s", kind, info)


@dataclass(frozen=True)
class RunContext:
    """Everything a run's steps, measurements and results need, fixed once the reference is scored."""

    pipeline: Pipeline
    data: DataBundle
    metric: Metric
    evaluator: Evaluator
    cache: Cache
    reference: Artifact
    reference_metric: float
    on_event: Event = quiet

    @property
    def spec(self) -> PipelineSpec:
        return self.pipeline.spec

    @property
    def budget(self) -> BudgetSpec:
        return self.pipeline.spec.budget

    def metric_of(self, artifact: Artifact, target: str | None = None) -> tuple[float, bool]:
        """The metric of ``artifact`` (on its default runtime, or on ``target``), memoized in the cache."""
        return _metric_of(self.cache, self.data, self.evaluator, self.metric, self.spec.metric,
                          self.reference, artifact, target)

    def pass_context(self, variant: str, pass_name: str, work_dir: Path | None = None) -> PassContext:
        """What a pass may use: data, the evaluator, the seed, the budget, a progress line."""
        return PassContext(
            self.data, self.evaluator, seed=self.spec.seed, max_drop=self.budget.max_drop,
            reference_metric=self.reference_metric, work_dir=work_dir,
            progress=lambda msg: self.on_event("pass_progress", variant=variant, name=pass_name, message=msg),
        )


def _metric_of(cache: Cache, data: DataBundle, evaluator: Evaluator, metric: Metric, metric_name: str,
               reference: Artifact, artifact: Artifact, target: str | None) -> tuple[float, bool]:
    from backends import get_runtime, parse_target

    eval_fp = data.fingerprint("evaluation")
    ref = reference.sha256 if not metric.needs_labels else None
    key = cache_key("metric", artifact.sha256, metric_name, eval_fp, ref, target)

    def compute() -> float:
        if target is None:
            return evaluator.evaluate(artifact)
        t = parse_target(target)
        return evaluator.evaluate(artifact, get_runtime(t.runtime), t.device)

    return cache.memo("metric", key, compute)


def load_reference(pipeline: Pipeline, data: DataBundle, cache: Cache) -> Artifact:
    """Import the pipeline's input model into the cache as the reference artifact."""
    from compressor.frameworks.importing import import_file, import_torch_factory

    model = pipeline.spec.model
    if model.factory:
        inputs = data.split("evaluation").inputs
        sample = inputs if len(inputs) > 1 else next(iter(inputs.values()))
        return import_torch_factory(model, pipeline.resolve, sample, cache)
    return import_file(pipeline.resolve(model.path), cache)


def prepare(pipeline: Pipeline, cache_dir: Path, on_event: Event = quiet) -> RunContext:
    """Load data, import and score the reference: the context every later stage of the run reads."""
    spec = pipeline.spec
    cache = Cache(cache_dir, on_warning=lambda message: on_event("warning", message=message))
    metric = get_metric(spec.metric)
    on_event("stage", message="loading data")
    data = load_bundle(spec.data, pipeline.resolve)
    evaluator = Evaluator(data, metric)
    on_event("stage", message="loading the input model")
    reference = load_reference(pipeline, data, cache)
    evaluator.set_reference(reference)
    value, _ = _metric_of(cache, data, evaluator, metric, spec.metric, reference, reference, None)
    return RunContext(pipeline, data, metric, evaluator, cache, reference, value, on_event)
