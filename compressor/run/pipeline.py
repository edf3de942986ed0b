"""The pipeline file: a validated YAML description of one compression run.

``load_pipeline`` reads and validates it, resolves relative paths against the file's folder, and
checks the whole format chain of every variant before any work is done.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import (
    BaseModel,
    ValidationError,
)

from compressor.errors import ConfigError, FormatChainError, did_you_mean, unknown_name
from compressor.formats import Format, detect_format
from compressor.run.spec import (  # the file's schema; BudgetSpec and DataSpec re-exported for callers
    BOUNDED_METRICS,
    METRICS,
    BudgetSpec,
    ChoicesSpec,
    DataSpec,
    ExecutorSpec,
    MetricSpec,
    NpzArraySpec,
    PipelineSpec,
    RangeSpec,
    Step,
)

__all__ = ["BudgetSpec", "DataSpec", "Pipeline", "PipelineSpec", "json_schema", "load_pipeline", "parse_pipeline",
           "pass_code"]


class Pipeline:
    """A validated pipeline: its spec, resolved paths, and each variant's pass instances."""

    def __init__(self, spec: PipelineSpec, base_dir: Path) -> None:
        self.spec = spec
        self.base_dir = base_dir
        self.source: Path | None = None  # the pipeline file, when it was read from one (provenance)
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
        for variant, passes in self.variants.items():
            self._check_chain(f"variant '{variant}'", passes)

    def _check_chain(self, label: str, passes: list[Any]) -> None:
        formats = {self.input_format()}  # a pass may write one of several formats: the next must take each
        for index, p in enumerate(passes):
            try:
                formats = {out for fmt in sorted(formats) for out in p.output_formats(fmt)}
            except FormatChainError as exc:
                either = (f" (step {index} may write any of {', '.join(sorted(f.value for f in formats))}: "
                          f"pin its output, e.g. save_as)") if len(formats) > 1 else ""
                raise FormatChainError(f"{label} step {index + 1}: {exc}{either}") from None
            try:
                p.fit_to_chain(passes[index + 1:])
            except ConfigError as exc:
                raise ConfigError(f"{label} step {index + 1} ({p.name}): {exc}") from None

    def build_steps(self, label: str, steps: list[Step]) -> list[Any]:
        """The passes of a list of steps not in ``variants`` (a search trial), format chain checked."""
        passes = [_resolve_step(label, i, step) for i, step in enumerate(steps)]
        self._check_chain(label, passes)
        return passes

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
            f"{_label(variant)} step {index + 1} is {step!r}; write a pass name or "
            f"{{pass.name: {{key: value}}}} with one pass per step."
        )
    try:
        return build_pass(name, config)
    except ConfigError as exc:
        raise type(exc)(f"{_label(variant)} step {index + 1}: {exc}") from None


def _label(variant: str) -> str:
    """How an error names a list of steps: "variant 'x'", or the caller's own label (a search template)."""
    return variant if variant.startswith(("variant ", "search ")) else f"variant '{variant}'"


def _explain(exc: ValidationError, source: str) -> ConfigError:
    errors = exc.errors()
    # a value that may take several forms (metric: a name or {name, outputs}) fails once per form:
    # report the form it was written in (an error that is not a type mismatch), without the form's tag
    err = next((e for e in errors if not e["type"].endswith(("_type", "_parsing"))), errors[0])
    loc = ".".join(str(p) for p in err["loc"] if not _form_tag(p))
    if err["type"] == "unsafe_name":
        return ConfigError(f"{source}: {err['msg']}")
    parts = [p for p in err["loc"] if not _form_tag(p)]
    if len(parts) == 3 and parts[0] == "variants" and isinstance(parts[2], int):  # one step of a variant
        return ConfigError(f"{source}: variant '{parts[1]}' step {parts[2] + 1} is {err.get('input')!r}; "
                           f"write a pass name or {{pass.name: {{key: value}}}}.")
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
    named = {cls.__name__: cls for cls in (MetricSpec, NpzArraySpec, ExecutorSpec, RangeSpec, ChoicesSpec)}
    tags = [p for p in loc if isinstance(p, str) and p in named]  # the models that are one form of a union
    if tags:
        return named[tags[-1]]
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        annotation = field.annotation if field else None
        forms = [a for a in (get_args(annotation) or (annotation,)) if isinstance(a, type) and issubclass(a, BaseModel)]
        if len(forms) != 1:  # an optional section (search: SearchSpec | None) has one model form
            return None
        model = forms[0]
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
    check_targets_fit(pipeline)
    if spec.search is not None:
        from compressor.run.search_space import check_search

        parse_target(spec.search.latency.target)
        check_search(spec.search, pipeline.variants, pipeline.build_steps)
    return pipeline


def check_targets_fit(pipeline: Pipeline) -> None:
    """A target bound to a Ray resource needs the Ray executor: refuse it otherwise, before any work."""
    from backends import parse_target

    if pipeline.spec.executor_spec.kind == "ray":
        return
    search = pipeline.spec.search
    for text in pipeline.spec.targets + ([search.latency.target] if search else []):
        if parse_target(text).resource:
            raise ConfigError(f"target '{text}' names a Ray resource, which only the Ray executor can place; "
                              f"add 'executor: {{kind: ray}}' to the pipeline or drop '@node:...' from the target.")


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
    pipeline = parse_pipeline(raw, path.resolve().parent, source=str(path))
    pipeline.source = path.resolve()
    return pipeline


def json_schema() -> dict[str, Any]:
    """The pipeline file's JSON schema (what ``compressor schema`` prints)."""
    return PipelineSpec.model_json_schema()
