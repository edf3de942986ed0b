"""The pipeline file: a validated YAML description of one compression run.

``load_pipeline`` reads and validates it, resolves relative paths against the file's folder, and
checks the whole format chain of every variant before any work is done.
"""
from __future__ import annotations

import re
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
from pydantic_core import PydanticCustomError

from compressor.errors import ConfigError, FormatChainError, did_you_mean, unknown_name
from compressor.formats import Format, detect_format

SPLITS = ("train", "test")
# names that become file or folder names (variants under artifacts/, the pipeline under runs/)
SAFE_NAME = re.compile(r"[A-Za-z0-9_+-][A-Za-z0-9._+-]{0,99}")
SAFE_NAME_RULE = "letters, digits, '.', '_', '-', '+', not starting with '.', at most 100 characters"


def check_safe_name(kind: str, name: str) -> str:
    """``name`` unchanged when it is safe as a file name; a one-line error naming it otherwise."""
    if not isinstance(name, str) or not SAFE_NAME.fullmatch(name):
        raise PydanticCustomError(
            "unsafe_name",
            f"{kind} name {name!r} cannot become a file name; allowed: {SAFE_NAME_RULE}; rename it "
            f"(e.g. '{_suggest(name)}').",
        )
    return name


def _suggest(name: object) -> str:
    """A safe name close to ``name``: every disallowed character becomes '-', leading dots go."""
    cleaned = re.sub(r"[^A-Za-z0-9._+-]+", "-", str(name)).lstrip(".-")[:100]
    return cleaned or "variant-1"

METRICS = ("accuracy", "top5", "cosine", "mse")


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


class DataSpec(_Strict):
    """Where samples come from, and which split each role uses."""

    source: str | None = Field(None, description="built-in source: digits | mnist")
    npz: str | None = Field(None, description="an .npz with 'x' (or 'x.<input>') and optional 'y'")
    factory: str | None = Field(None, description="'package.module:fn' returning {'x': ..., 'y': ...}")
    size: int | None = Field(None, gt=0, description="resize built-in images to size x size")
    test_fraction: float = Field(0.25, gt=0, lt=1)
    seed: int = 0
    calibration: SplitSpec = SplitSpec(split="train", limit=256)
    evaluation: SplitSpec = SplitSpec(split="test")
    training: SplitSpec = SplitSpec(split="train")

    @model_validator(mode="after")
    def _one_source(self) -> DataSpec:
        given = [k for k in ("source", "npz", "factory") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(f"give exactly one of 'source', 'npz', 'factory' (got {given or 'none'})")
        return self


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
    metric: str = "accuracy"
    budget: BudgetSpec = BudgetSpec()
    variants: dict[str, list[Step]]
    targets: list[str] = Field(default_factory=lambda: ["onnxruntime:cpu"])
    benchmark: BenchmarkSpec = BenchmarkSpec()
    seed: int = 0
    executor: Literal["local"] = "local"

    @field_validator("name")
    @classmethod
    def _safe_pipeline_name(cls, value: str) -> str:
        return check_safe_name("pipeline", value)  # the default run folder is runs/<name>

    @field_validator("variants")
    @classmethod
    def _safe_variant_names(cls, value: dict[str, list[Step]]) -> dict[str, list[Step]]:
        for name in value:
            check_safe_name("variant", name)  # a variant's model is written to artifacts/<name>
        return value


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

    def named_code(self) -> list[str]:
        """The 'module:attr' names this pipeline gives for code a model folder may record: the model
        factory and every distillation student. A folder naming one of them loads without --trust-code."""
        specs = [self.spec.model.factory] if self.spec.model.factory else []
        return specs + [s for passes in self.variants.values() for p in passes for s in pass_code(p)]

    def select(self, names: list[str]) -> None:
        """Keep only the named variants (``--variant``)."""
        for name in names:
            if name not in self.variants:
                raise unknown_name("variant", name, self.variants, "Check --variant.")
        self.variants = {n: v for n, v in self.variants.items() if n in names}


def pass_code(p: Any) -> list[str]:
    """The 'module:attr' names a pass's config gives for a model it builds (distill.kd's ``student``)."""
    student = getattr(p.config, "student", None)
    return [student] if isinstance(student, str) and student else []


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
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    if err["type"] == "unsafe_name":
        return ConfigError(f"{source}: {err['msg']}")
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


def _model_at(model: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The pydantic model found by following ``loc`` from ``model``; None where it leaves models."""
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
    if spec.metric not in METRICS and ":" not in spec.metric:
        raise unknown_name("metric", spec.metric, METRICS, "Or give 'package.module:fn'.")
    if not spec.variants:
        raise ConfigError(f"{source}: 'variants' is empty; name at least one variant with its passes.")
    from backends import parse_target

    for target in spec.targets:
        parse_target(target)
    pipeline = Pipeline(spec, base_dir)
    pipeline.check_chains()
    return pipeline


class DuplicateKeyError(yaml.YAMLError):
    """A mapping names the same key twice (lines are 1-based)."""

    def __init__(self, key: Any, line: int, first: int) -> None:
        super().__init__(f"line {line}: duplicate key {key!r} (first at line {first})")
        self.key, self.line, self.first = key, line, first


class UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a mapping naming a key twice (PyYAML keeps the last silently).

    A key given explicitly may still override one merged in with ``<<: *anchor``: that is what a
    merge is for.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                try:
                    if key in seen:
                        raise DuplicateKeyError(key, line, seen[key])
                    seen[key] = line
                except TypeError:  # an unhashable key: SafeLoader refuses it below
                    continue
        return super().construct_mapping(node, deep=deep)


def load_pipeline(path: Path) -> Pipeline:
    """Read, validate and check a pipeline YAML file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"pipeline file '{path}' does not exist; give the path to a .yaml file.")
    try:
        raw = yaml.load(path.read_text(), Loader=UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except DuplicateKeyError as exc:
        raise ConfigError(f"{path} line {exc.line}: duplicate key {exc.key!r} (first at line {exc.first}); "
                          f"each key may appear once.") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"pipeline file '{path}' is not valid YAML{where}; fix the syntax.") from None
    return parse_pipeline(raw, path.resolve().parent, source=str(path))


def json_schema() -> dict[str, Any]:
    """The pipeline file's JSON schema (what ``compressor schema`` prints)."""
    return PipelineSpec.model_json_schema()
