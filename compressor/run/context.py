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
from compressor.data import DataBundle, load_bundle
from compressor.data_checks import check_feeding_names, check_label_range
from compressor.errors import DataError
from compressor.measure.evaluate import Evaluator, predict_all
from compressor.metrics import Metric, get_metric, worst
from compressor.passes.base import PassContext

if TYPE_CHECKING:
    from compressor.run.pipeline import BudgetSpec, Pipeline, PipelineSpec

log = logging.getLogger(__name__)

Event = Callable[..., None]
NEAR_ZERO = 1e-6  # a reference output no larger than this everywhere cannot anchor cosine / mse


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
        return _metric_of(self.cache, self.data, self.evaluator, self.metric, _metric_key(self.spec),
                          self.reference, artifact, target)

    def metric_detail(self, artifact: Artifact) -> dict[str, float]:
        """The metric of each scored output of ``artifact`` (memoized; the metric is the worst of them)."""
        return _metric_detail(self.cache, self.data, self.evaluator, self.metric, _metric_key(self.spec),
                              self.reference, artifact, None)[0]

    def pass_context(self, variant: str, pass_name: str, work_dir: Path | None = None) -> PassContext:
        """What a pass may use: data, the evaluator, the seed, the budget, a progress line."""
        return PassContext(
            self.data, self.evaluator, seed=self.spec.seed, max_drop=self.budget.max_drop,
            reference_metric=self.reference_metric, work_dir=work_dir,
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


def prepare(pipeline: Pipeline, cache_dir: Path, on_event: Event = quiet) -> RunContext:
    """Load data, import and score the reference: the context every later stage of the run reads.

    Data that cannot be right is refused here, before any pass runs: constants and batch axes that
    do not fit the model, labels outside its classes, and a reference whose outputs cannot be compared to.
    """
    spec = pipeline.spec
    cache = Cache(cache_dir)
    metric = get_metric(spec.metric_name)
    on_event("stage", message="loading data")
    data = load_bundle(spec.data, pipeline.resolve, class_labels=":" not in spec.metric_name)
    evaluator = Evaluator(data, metric, spec.data.evaluation.batch_size, spec.metric_outputs)
    on_event("stage", message="loading the input model")
    reference = load_reference(pipeline, data, cache)
    split = data.split("evaluation", needed_by="the metric")
    check_feeding_names(reference.signature, split.feeding, list(split.inputs))
    evaluator.set_reference(reference)
    if evaluator.reference_outputs is not None:
        check_reference_outputs(evaluator.reference_outputs, metric.name)
    if spec.metric_name in ("accuracy", "top5") and split.labels is not None:
        name, classes = _classes(evaluator, reference)
        check_label_range(split.labels, max(classes, _new_head_classes(pipeline)), name)
    value, _ = _metric_of(cache, data, evaluator, metric, _metric_key(spec), reference, reference, None)
    return RunContext(pipeline, data, metric, evaluator, cache, reference, value, on_event)


def _new_head_classes(pipeline: Pipeline) -> int:
    """The most classes a pass's new head gives the model (``train.finetune: {head: {num_classes}}``); 0 if none.

    Transfer learning scores labels the input model's own head cannot produce; they must fit the new head.
    """
    heads = [getattr(getattr(p, "config", None), "head", None) for passes in pipeline.variants.values() for p in passes]
    return max((int(getattr(h, "num_classes", 0) or 0) for h in heads if h is not None), default=0)


def _classes(evaluator: Evaluator, reference: Artifact) -> tuple[str, int]:
    """The scored output's name and its number of classes (from the signature, else from one batch)."""
    name, index = next(iter(evaluator.scored.items()))
    outputs = reference.signature.outputs
    dims = list(outputs[index].shape[1:]) if index < len(outputs) else [None]
    if all(isinstance(d, int) and d > 0 for d in dims) and not evaluator.split.feeding.axis(name):
        return name, int(np.prod(dims))
    batch = evaluator.split.take(evaluator.batch_size)
    out = predict_all(reference, batch, batch_size=evaluator.batch_size)[index]
    return name, int(np.prod(out.shape[1:]))


def check_reference_outputs(outputs: dict[str, np.ndarray], metric: str) -> None:
    """Refuse a reference whose outputs make a comparison meaningless: NaN/inf, near zero, or constant."""
    for name, out in outputs.items():
        x = np.asarray(out, dtype=np.float64)
        what = f"the reference model's output '{name}' on the {len(x)} evaluation samples"
        if not np.all(np.isfinite(x)):
            raise DataError(
                f"{what} holds {int((~np.isfinite(x)).sum())} NaN/inf values; check the input model and what it is "
                f"fed (data scaling, data.constants, state inputs) before comparing variants to it."
            )
        peak = float(np.max(np.abs(x))) if x.size else 0.0
        if peak < NEAR_ZERO:
            raise DataError(
                f"{what} is near zero everywhere (max |x| {peak:.2g} < {NEAR_ZERO:g}), so {metric} against it means "
                f"nothing; check what the model is fed (data.constants, scaling), or score other outputs (metric.outputs)."
            )
        if len(x) > 1 and float(np.max(np.abs(x - x[0]))) <= NEAR_ZERO * max(1.0, peak):
            raise DataError(
                f"{what} is the same for every sample, so {metric} against it cannot tell variants apart; check "
                f"that the data varies and reaches the model (data.constants, state inputs), or score other outputs "
                f"(metric.outputs)."
            )
