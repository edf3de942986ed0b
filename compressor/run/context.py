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

import numpy as np

from compressor.artifact import Artifact
from compressor.cache import Cache, cache_key
from compressor.code import TrustPolicy, current_trust, trusting
from compressor.data import DataBundle, load_bundle
from compressor.data_checks import check_feeding_names, check_label_range
from compressor.measure.evaluate import Evaluator
from compressor.metrics import Metric, get_metric, worst
from compressor.passes.base import PassContext
from compressor.run.reference_checks import (
    check_reference_outputs,
    new_head_classes,
    scored_classes,
)

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
    trust: TrustPolicy = TrustPolicy()  # which code the model folders of this run may name

    def trusted(self, *specs: str) -> Any:
        """A block in which model folders load under this run's trust policy (steps, measurements),
        widened by the policy already in force and by ``specs`` (code a pass config names)."""
        return trusting(self.trust.union(current_trust()).union(TrustPolicy.of(specs)))

    @property
    def spec(self) -> PipelineSpec:
        return self.pipeline.spec

    @property
    def budget(self) -> BudgetSpec:
        return self.pipeline.spec.budget

    def metric_of(self, artifact: Artifact, target: str | None = None) -> tuple[float, bool]:
        """The metric of ``artifact`` (on its default runtime, or on ``target``), memoized in the cache."""
        with self.trusted():
            return _metric_of(self.cache, self.data, self.evaluator, self.metric, _metric_key(self.spec),
                              self.reference, artifact, target)

    def metric_detail(self, artifact: Artifact) -> dict[str, float]:
        """The metric of each scored output of ``artifact`` (memoized; the metric is the worst of them)."""
        with self.trusted():
            return _metric_detail(self.cache, self.data, self.evaluator, self.metric, _metric_key(self.spec),
                                  self.reference, artifact, None)[0]

    def pass_context(self, variant: str, pass_name: str, work_dir: Path | None = None) -> PassContext:
        """What a pass may use: data, the evaluator, the seed, the budget, a progress line."""
        return PassContext(
            self.data, self.evaluator, seed=self.spec.seed, max_drop=self.budget.absolute(self.reference_metric),
            reference_metric=self.reference_metric, work_dir=work_dir,
            batch_sizes=tuple(self.spec.benchmark.batch_sizes), target=(self.spec.targets or ["onnxruntime:cpu"])[0],
            progress=lambda msg: self.on_event("pass_progress", variant=variant, name=pass_name, message=msg),
        )


def _metric_key(spec: PipelineSpec) -> Any:
    """What of the pipeline's metric settings enters the metric's cache key (a plain name as before)."""
    key = spec.metric if isinstance(spec.metric, str) else spec.metric.model_dump()
    batch = spec.data.evaluation.batch_size
    return key if batch == 64 else [key, {"batch_size": batch}]


def _cache_key(kind: str, data: DataBundle, metric: Metric, metric_key: Any, reference: Artifact,
               artifact: Artifact, target: str | None) -> str:
    ref = reference.sha256 if not metric.needs_labels else None
    return cache_key(kind, artifact.sha256, metric_key, data.fingerprint("evaluation"), ref, target)


def _evaluate(evaluator: Evaluator, artifact: Artifact, target: str | None) -> dict[str, np.ndarray]:
    from backends import get_runtime, parse_target

    if target is None:
        return evaluator.outputs(artifact)
    t = parse_target(target)
    return evaluator.outputs(artifact, get_runtime(t.runtime), t.device)


def _metric_detail(cache: Cache, data: DataBundle, evaluator: Evaluator, metric: Metric, metric_key: Any,
                   reference: Artifact, artifact: Artifact, target: str | None) -> tuple[dict[str, float], bool]:
    key = _cache_key("metric", data, metric, metric_key, reference, artifact, target)
    return cache.memo("metric_outputs", key, lambda: evaluator.score_detail(_evaluate(evaluator, artifact, target)))


def _metric_of(cache: Cache, data: DataBundle, evaluator: Evaluator, metric: Metric, metric_key: Any,
               reference: Artifact, artifact: Artifact, target: str | None) -> tuple[float, bool]:
    if len(evaluator.scored) > 1:  # the worst output is the metric; each output's value is kept too
        detail, hit = _metric_detail(cache, data, evaluator, metric, metric_key, reference, artifact, target)
        return worst(metric, detail), hit
    key = _cache_key("metric", data, metric, metric_key, reference, artifact, target)
    return cache.memo("metric", key, lambda: evaluator.score_outputs(_evaluate(evaluator, artifact, target)))


def load_reference(pipeline: Pipeline, data: DataBundle, cache: Cache) -> Artifact:
    """Import the pipeline's input model into the cache as the reference artifact."""
    from compressor.frameworks.importing import import_file, import_torch_factory

    model = pipeline.spec.model
    if model.factory:
        inputs = data.split("evaluation").inputs
        sample = inputs if len(inputs) > 1 else next(iter(inputs.values()))
        return import_torch_factory(model, pipeline.resolve, sample, cache)
    return import_file(pipeline.resolve(model.path), cache)


def prepare(pipeline: Pipeline, cache_dir: Path, on_event: Event = quiet, trust_code: bool = False) -> RunContext:
    """Load data, import and score the reference: the context every later stage of the run reads.

    Model folders load under a trust policy: the code the pipeline names, or anything with ``trust_code``.
    Data that cannot be right is refused here, before any pass runs: constants and batch axes that
    do not fit the model, labels outside its classes, and a reference whose outputs cannot be compared to.
    """
    trust = TrustPolicy.of(pipeline.named_code(), trust_all=trust_code)
    with trusting(trust):
        return _prepare(pipeline, cache_dir, on_event, trust)


def _prepare(pipeline: Pipeline, cache_dir: Path, on_event: Event, trust: TrustPolicy) -> RunContext:
    spec = pipeline.spec
    cache = Cache(cache_dir, on_warning=lambda message: on_event("warning", message=message))
    metric = get_metric(spec.metric_name)
    on_event("stage", message="loading data")
    data = load_bundle(spec.data, pipeline.resolve, class_labels=":" not in spec.metric_name and metric.labels == "class")
    evaluator = Evaluator(data, metric, spec.data.evaluation.batch_size, spec.metric_outputs)
    on_event("stage", message="loading the input model")
    reference = load_reference(pipeline, data, cache)
    split = data.split("evaluation", needed_by="the metric")
    check_feeding_names(reference.signature, split.feeding, list(split.inputs))
    evaluator.set_reference(reference)
    if evaluator.reference_outputs is not None:
        check_reference_outputs(evaluator.reference_outputs, metric.name)
    if spec.metric_name in ("accuracy", "top5") and split.labels is not None:
        name, classes = scored_classes(evaluator, reference)
        check_label_range(split.labels, max(classes, new_head_classes(pipeline)), name)
    value, _ = _metric_of(cache, data, evaluator, metric, _metric_key(spec), reference, reference, None)
    return RunContext(pipeline, data, metric, evaluator, cache, reference, value, on_event, trust)

