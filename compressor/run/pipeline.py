"""The pipeline file: a validated YAML description of one compression run.

``load_pipeline`` reads and validates it, resolves relative paths against the file's folder, and
checks the whole format chain of every variant before any work is done.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Union

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from compressor.errors import ConfigError, FormatChainError, did_you_mean, unknown_name
from compressor.formats import Format, detect_format

SPLITS = ("train", "test")
METRICS = ("accuracy", "top5", "cosine", "mse")
BOUNDED_METRICS = ("accuracy", "top5", "cosine")  # their drop is a fraction: max_drop above 1 means nothing


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSpec(_Strict):
    """The input model: a file (``path``) or a PyTorch factory plus safetensors weights."""

    path: str | None = None
    factory: str | None = Field(None, description="'package.module:callable' building the nn.Module")
    weights: str | None = Field(None, description="safetensors state dict for the factory's module")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of the factory")
    input_shape: list[int] | None = Field(
        None, description="one sample's input shape (no batch), when the data cannot tell it"
    )

    @model_validator(mode="after")
    def _one_source(self) -> ModelSpec:
        if bool(self.path) == bool(self.factory):
            raise ValueError("give either 'path' (a model file) or 'factory' (+ 'weights'), not both or neither")
        return self


class SplitSpec(_Strict):
    """Which split a role (calibration, evaluation, training) reads, and how many samples at most."""

    split: Literal["train", "test"]
    limit: int | None = Field(None, gt=0)


class EvaluationSpec(SplitSpec):
    """The evaluation split, and how many samples the model sees per batch when scored."""

    batch_size: int = Field(64, ge=1, description="samples per batch when scoring (a fixed-batch model needs its own)")


class NpzArraySpec(_Strict):
    """One array of an .npz file, for a constant input."""

    npz: str
    key: str


class DataSpec(_Strict):
    """Where samples come from, and which split each role uses."""

    source: str | None = Field(None, description="built-in source: digits | mnist")
    npz: str | None = Field(None, description="an .npz with 'x' (or 'x.<input>') and optional 'y'")
    factory: str | None = Field(None, description="'package.module:fn' returning {'x': ..., 'y': ...}")
    size: int | None = Field(None, gt=0, description="resize built-in images to size x size")
    test_fraction: float = Field(0.25, gt=0, lt=1)
    seed: int = 0
    calibration: SplitSpec = SplitSpec(split="train", limit=256)
    evaluation: EvaluationSpec = EvaluationSpec(split="test")
    training: SplitSpec = SplitSpec(split="train")
    constants: dict[str, Union[int, float, list[Any], NpzArraySpec]] = Field(
        default_factory=dict, description="inputs fed the same value in every batch (not batched): a number, "
        "a nested list, or {npz: file.npz, key: name}")
    batch_axis: dict[str, int] = Field(
        default_factory=dict, description="inputs (and outputs) whose batch is not axis 0, with their batch axis; "
        "their data arrays hold samples on that axis too")

    @field_validator("batch_axis")
    @classmethod
    def _axes(cls, value: dict[str, int]) -> dict[str, int]:
        bad = {k: v for k, v in value.items() if v < 0}
        if bad:
            raise ValueError(f"batch axes must be >= 0 (count from the first axis), got {bad}")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> DataSpec:
        given = [k for k in ("source", "npz", "factory") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(f"give exactly one of 'source', 'npz', 'factory' (got {given or 'none'})")
        return self


class MetricSpec(_Strict):
    """A metric and the model outputs it scores (all of them when not named, for cosine / mse)."""

    name: str
    outputs: list[str] | None = Field(
        None, min_length=1, description="the outputs to score; accuracy / top5 score exactly one")


class BudgetSpec(_Strict):
    """How much the metric may worsen against the input model."""

    max_drop: float = Field(0.01, ge=0)

    def allows(self, drop: float) -> bool:
        """Whether a metric drop (positive = worse) is within the budget."""
        return drop <= self.max_drop


class BenchmarkSpec(_Strict):
    """Timing loop settings shared by every runtime."""

    batch_sizes: list[int] = Field(default_factory=lambda: [1])
    threads: int = Field(1, ge=1)
    warmup_runs: int = Field(10, ge=0)
    warmup_seconds: float = Field(0.2, ge=0)
    min_runs: int = Field(100, ge=1)
    min_seconds: float = Field(1.0, ge=0)
    max_seconds: float = Field(30.0, gt=0)
    ledger_steps: bool = Field(
        False, description="measure every intermediate artifact too, so the ledger shows each step's latency"
    )

    @field_validator("batch_sizes")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        if not value or any(b < 1 for b in value):
            raise ValueError("batch_sizes must be a non-empty list of positive integers")
        return value


Step = Union[str, dict[str, Union[dict[str, Any], None]]]


class PipelineSpec(_Strict):
    """A whole pipeline file."""

    name: str
    model: ModelSpec
    data: DataSpec
    metric: Union[str, MetricSpec] = "accuracy"
    budget: BudgetSpec = BudgetSpec()
    variants: dict[str, list[Step]]
    targets: list[str] = Field(default_factory=lambda: ["onnxruntime:cpu"])
    benchmark: BenchmarkSpec = BenchmarkSpec()
    seed: int = 0
    executor: Literal["local"] = "local"


    @property
    def metric_name(self) -> str:
        """The metric's name whether it was given as a string or as {name, outputs}."""
        return self.metric if isinstance(self.metric, str) else self.metric.name

    @property
    def metric_outputs(self) -> list[str] | None:
        """The outputs the pipeline names for the metric; None: the default choice."""
        return None if isinstance(self.metric, str) else self.metric.outputs


class Pipeline:
    """A validated pipeline: its spec, resolved paths, and each variant's pass instances."""

    def __init__(self, spec: PipelineSpec, base_dir: Path) -> None:
        self.spec = spec
        self.base_dir = base_dir
        self.variants: dict[str, list[Any]] = {
            name: [_resolve_step(name, i, step) for i, step in enumerate(steps)]
            for name, steps in spec.variants.items()
        }

    @property
    def name(self) -> str:
        return self.spec.name

    def resolve(self, path: str) -> Path:
        """A path from the pipeline file, resolved against the file's folder."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else (self.base_dir / p)

    def input_format(self) -> Format:
        if self.spec.model.factory:
            return Format.TORCH
        return detect_format(self.resolve(self.spec.model.path))

    def check_chains(self) -> None:
        """Walk every variant's formats; an impossible chain is an error before any work."""
        start = self.input_format()
        for variant, passes in self.variants.items():
            fmt = start
            for index, p in enumerate(passes):
                try:
                    fmt = p.produces(fmt)
                except FormatChainError as exc:
                    raise FormatChainError(f"variant '{variant}' step {index + 1}: {exc}") from None

    def select(self, names: list[str]) -> None:
        """Keep only the named variants (``--variant``)."""
        for name in names:
            if name not in self.variants:
                raise unknown_name("variant", name, self.variants, "Check --variant.")
        self.variants = {n: v for n, v in self.variants.items() if n in names}


def _resolve_step(variant: str, index: int, step: Step) -> Any:
    from compressor.passes.registry import build_pass

    if isinstance(step, str):
        name, config = step, {}
    elif isinstance(step, dict) and len(step) == 1:
        name, config = next(iter(step.items()))
        config = config or {}
    else:
        raise ConfigError(
            f"variant '{variant}' step {index + 1} is {step!r}; write a pass name or "
            f"{{pass.name: {{key: value}}}} with one pass per step."
        )
    try:
        return build_pass(name, config)
    except ConfigError as exc:
        raise type(exc)(f"variant '{variant}' step {index + 1}: {exc}") from None


def _explain(exc: ValidationError, source: str) -> ConfigError:
    errors = exc.errors()
    # a value that may take several forms (metric: a name or {name, outputs}) fails once per form:
    # report the form it was written in (an error that is not a type mismatch), without the form's tag
    err = next((e for e in errors if not e["type"].endswith(("_type", "_parsing"))), errors[0])
    loc = ".".join(str(p) for p in err["loc"] if not _form_tag(p))
    if err["type"].endswith(("_type", "_parsing")) and len({str(e["loc"][:-1]) for e in errors}) == 1 and len(errors) > 1:
        forms = ", ".join(str(e["loc"][-1]) for e in errors)
        return ConfigError(f"{source}: '{loc or 'pipeline'}' = {err.get('input')!r} is invalid: give one of: {forms}.")
    if err["type"] == "extra_forbidden":
        parent_model = _model_at(PipelineSpec, err["loc"][:-1])
        key = str(err["loc"][-1])
        known = list(parent_model.model_fields) if parent_model else []
        return ConfigError(
            f"{source}: unknown key '{loc}'.{did_you_mean(key, known)} Known here: {', '.join(known)}."
        )
    if err["type"] == "missing":
        return ConfigError(f"{source}: required key '{loc}' is missing; add it (see 'compressor schema').")
    value = err.get("input")
    shown = repr(value) if not isinstance(value, dict) else "the mapping given"
    return ConfigError(f"{source}: '{loc or 'pipeline'}' = {shown} is invalid: {err['msg']}.")


def _form_tag(part: Any) -> bool:
    """Whether a part of an error location is pydantic's tag for one form of a union (str, MetricSpec...)."""
    return isinstance(part, str) and (part in ("str", "int", "float", "bool") or part.startswith(("list[", "dict["))
                                      or part[:1].isupper())


def _model_at(model: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The pydantic model found by following ``loc`` from ``model``; None where it leaves models."""
    named = {cls.__name__: cls for cls in (MetricSpec, NpzArraySpec)}  # the models that are one form of a union
    tags = [p for p in loc if isinstance(p, str) and p in named]
    if tags:
        return named[tags[-1]]
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


def parse_pipeline(raw: Any, base_dir: Path, source: str = "pipeline") -> Pipeline:
    """Validate a pipeline mapping and build it; every problem is a one-line ConfigError."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(raw).__name__}.")
    try:
        spec = PipelineSpec(**raw)
    except ValidationError as exc:
        raise _explain(exc, source) from None
    if spec.metric_name not in METRICS and ":" not in spec.metric_name:
        raise unknown_name("metric", spec.metric_name, METRICS, "Or give 'package.module:fn'.")
    if spec.metric_name in BOUNDED_METRICS and spec.budget.max_drop > 1:
        raise ConfigError(
            f"{source}: budget.max_drop = {spec.budget.max_drop:g} cannot be met or missed by metric "
            f"'{spec.metric_name}', which is a fraction (at most 1); give max_drop <= 1 (0.01 = one point)."
        )
    if not spec.variants:
        raise ConfigError(f"{source}: 'variants' is empty; name at least one variant with its passes.")
    from backends import parse_target

    for target in spec.targets:
        parse_target(target)
    pipeline = Pipeline(spec, base_dir)
    pipeline.check_chains()
    return pipeline


def load_pipeline(path: Path) -> Pipeline:
    """Read, validate and check a pipeline YAML file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"pipeline file '{path}' does not exist; give the path to a .yaml file.")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"pipeline file '{path}' is not valid YAML{where}; fix the syntax.") from None
    return parse_pipeline(raw, path.resolve().parent, source=str(path))


def json_schema() -> dict[str, Any]:
    """The pipeline file's JSON schema (what ``compressor schema`` prints)."""
    return PipelineSpec.model_json_schema()
