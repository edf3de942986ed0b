"""The pipeline file's schema: pydantic models of every section (model, data, metric, budget,
benchmark, variants) and the rule for names that become paths."""
from __future__ import annotations

import re
from typing import Any, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

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

METRICS = ("accuracy", "top5", "cosine", "mse", "perplexity")
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


class TextSpec(_Strict):
    """The ``text`` source: documents, the model's tokenizer, and the fixed context of a sample."""

    documents: str | None = Field(None, description="'package.module:fn' returning the documents (a list of strings)")
    files: list[str] | None = Field(None, min_length=1, description="UTF-8 text files; blank lines separate documents")
    tokenizer: str = Field(..., description="the model's tokenizer.json (Hugging Face tokenizers)")
    context_length: int = Field(128, ge=2, le=8192, description="tokens per sample; perplexity is over this context")
    eos_token: str = Field("</s>", description="the token that separates documents in the token stream")

    @model_validator(mode="after")
    def _one_source(self) -> TextSpec:
        if bool(self.documents) == bool(self.files):
            raise ValueError("give either 'documents' (package.module:fn) or 'files', not both or neither")
        return self


class DataSpec(_Strict):
    """Where samples come from, and which split each role uses."""

    source: str | None = Field(None, description="built-in source: digits | mnist | text (with data.text)")
    text: TextSpec | None = Field(None, description="the text source's documents, tokenizer and context length")
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
        if (self.source == "text") != (self.text is not None):
            raise ValueError("the text source needs 'text: {documents or files, tokenizer}', and 'text' needs "
                             "'source: text'")
        return self


class MetricSpec(_Strict):
    """A metric and the model outputs it scores (all of them when not named, for cosine / mse)."""

    name: str
    outputs: list[str] | None = Field(
        None, min_length=1, description="the outputs to score; accuracy / top5 score exactly one")


class BudgetSpec(_Strict):
    """How much the metric may worsen against the input model."""

    max_drop: float = Field(0.01, ge=0)
    relative: bool = Field(False, description="max_drop is a fraction of the reference's value (perplexity +3%: 0.03)")

    def absolute(self, reference: float | None = None) -> float:
        """The allowed drop in the metric's own units."""
        return self.max_drop * abs(reference) if self.relative and reference is not None else self.max_drop

    def allows(self, drop: float, reference: float | None = None) -> bool:
        """Whether a metric drop (positive = worse) is within the budget (``reference``: for a relative one)."""
        return drop <= self.absolute(reference)


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
    rounds: int = Field(5, ge=3, description="paired comparisons: at least this many interleaved rounds")
    max_rounds: int = Field(15, ge=3, description="paired comparisons: more rounds while inconclusive, up to this")
    min_effect: float = Field(
        0.05, gt=0, le=1, description="a speed change smaller than this fraction is 'no change'; 'slower' needs the "
        "whole 95% interval below 1 / (1 + min_effect)")
    round_seconds: float = Field(0.2, gt=0, description="timed window of one paired round (a fresh process each)")
    max_cv: float = Field(
        0.1, gt=0, description="noise guard: a measurement whose robust CV (of its timed runs) is above this is "
        "taken again, up to max_remeasure times, and marked unstable if it stays above")
    max_remeasure: int = Field(1, ge=0, le=10, description="noise guard: extra measurements at most")

    @model_validator(mode="after")
    def _round_cap(self) -> BenchmarkSpec:
        if self.max_rounds < self.rounds:
            raise ValueError(f"max_rounds ({self.max_rounds}) must be at least rounds ({self.rounds}); raise max_rounds "
                             f"or lower rounds")
        return self

    @field_validator("batch_sizes")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        if not value or any(b < 1 for b in value):
            raise ValueError("batch_sizes must be a non-empty list of positive integers")
        return value


PACKAGE_TARGETS = ("onnxruntime:cpu", "litert:cpu")


class PackageSpec(_Strict):
    """Deployment packages built at the end of a run: per target, the fastest variant within budget
    (or the one named), with its manifest, golden sample and run.py (``compressor package``)."""

    targets: list[str] | None = Field(
        None, description="targets to package for: onnxruntime:cpu, litert:cpu (default: the pipeline's targets; "
        "one with no variant in its format is skipped)")
    variants: dict[str, str] = Field(
        default_factory=dict, description="target -> variant to package for it (default: the fastest within budget)")
    version: str = Field("1.0.0", pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$", description="the packages' version")
    golden_samples: int = Field(4, ge=1, le=16, description="real evaluation samples in each golden sample")
    ort: bool = Field(True, description="onnxruntime packages also hold model.ort and the operators a reduced build needs")
    zip: bool = Field(False, description="also write PACKAGE.zip")
    oci: bool = Field(False, description="also write PACKAGE.oci/, an OCI image layout (CNCF ModelPack media types)")
    labels: list[str] | None = Field(None, description="class names, in output order (default: from the data source)")


class GenerationSpec(_Strict):
    """Language models: greedy generation with the key/value cache, timed and compared to the reference."""

    prompt_tokens: int = Field(128, ge=1, description="tokens of the timed prompt (prefill)")
    new_tokens: int = Field(64, ge=2, description="tokens generated after it (decode ms per token over these)")
    timed_rounds: int = Field(10, ge=1, description="prefill calls timed (decode: at least new_tokens steps)")
    prompts: int = Field(4, ge=1, description="held-out prompts whose greedy tokens give greedy_agreement")
    agreement_tokens: int = Field(64, ge=1, description="greedy tokens compared to the reference's per prompt")


Step = Union[str, dict[str, Union[dict[str, Any], None]]]

OBJECTIVES = ("metric", "p50", "size")


class RangeSpec(_Strict):
    """A numeric range of a searched setting: integers when both ends are, else floats."""

    low: Union[int, float]
    high: Union[int, float]
    log: bool = False
    step: Union[int, float, None] = Field(None, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> RangeSpec:
        if not self.low < self.high:
            raise ValueError(f"a range needs low < high, got low {self.low:g}, high {self.high:g}")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0, got {self.low:g}")
        return self


class ChoicesSpec(_Strict):
    """An explicit list of values of a searched setting (for numbers that are not a range)."""

    choices: list[Any] = Field(min_length=1)


class LatencySpec(_Strict):
    """Where the latency objective is measured: a target and one batch size."""

    target: str = "onnxruntime:cpu"
    batch_size: int = Field(1, ge=1)


class SearchSpec(_Strict):
    """``compressor search``: pass settings searched under the budget (Optuna, multi-objective)."""

    templates: dict[str, list[Step]] = Field(
        min_length=1, description="pass lists a trial starts from; with several, the trial picks one (the pass order)")
    space: dict[str, Union[RangeSpec, ChoicesSpec, list[Any]]] = Field(
        default_factory=dict, description="'pass.name.key': [low, high] (two numbers, one a float: a range), "
        "{low, high, log, step}, a list of values, or {choices: [...]}")
    objectives: list[Literal["metric", "p50", "size"]] = Field(
        default_factory=lambda: list(OBJECTIVES), min_length=1, description="metric, p50 (latency.target at "
        "latency.batch_size) and size_bytes; the budget is a constraint, never an objective")
    latency: LatencySpec = LatencySpec()
    sampler: Literal["tpe", "nsga2"] = "tpe"
    startup_trials: int = Field(8, ge=1, description="random trials before TPE models the space "
                                "(NSGA-II: its population size)")
    compare: list[str] | None = Field(
        None, description="hand-written variants measured beside the front (default: every variant the latency "
        "target can run)")
    seed: int = 0

    @field_validator("templates")
    @classmethod
    def _safe_template_names(cls, value: dict[str, list[Step]]) -> dict[str, list[Step]]:
        for name in value:
            check_safe_name("search template", name)
        return value

    @field_validator("objectives")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError(f"objectives {value} name one twice; give each of {', '.join(OBJECTIVES)} at most once")
        return value


class ExecutorSpec(_Strict):
    """Where a run's jobs go: this process (local) or a Ray cluster."""

    kind: Literal["local", "ray"] = "local"
    address: str | None = Field(None, description="ray: 'auto' (a running cluster), 'ray://host:port', or none "
                                "(a cluster started for this run on this machine)")


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
    generation: GenerationSpec | None = Field(None, description="language models: generation measurements")
    seed: int = 0
    executor: Union[Literal["local", "ray"], ExecutorSpec] = "local"
    package: PackageSpec | None = Field(None, description="deployment packages built at the end of the run")
    search: SearchSpec | None = Field(None, description="what 'compressor search' searches; 'run' ignores it")

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

    @model_validator(mode="after")
    def _package_names(self) -> PipelineSpec:
        if self.package is None:
            return self
        targets = self.package.targets or self.targets
        for target in self.package.targets or []:  # a target not measured gets the smallest file within budget
            if target not in PACKAGE_TARGETS:
                raise ValueError(f"package.targets names '{target}'; packages are built and verified for "
                                 f"{', '.join(PACKAGE_TARGETS)}; use one of them")
        for target, variant in self.package.variants.items():
            if target not in targets:
                raise ValueError(f"package.variants names target '{target}', not one packaged {targets}; fix the name")
            if variant not in self.variants:
                raise ValueError(f"package.variants.{target} names variant '{variant}', not one of "
                                 f"{sorted(self.variants)}; fix the name")
        return self

    @property
    def executor_spec(self) -> ExecutorSpec:
        """The executor as {kind, address} whether it was written as a name or a mapping."""
        return self.executor if isinstance(self.executor, ExecutorSpec) else ExecutorSpec(kind=self.executor)

    @property
    def metric_name(self) -> str:
        """The metric's name whether it was given as a string or as {name, outputs}."""
        return self.metric if isinstance(self.metric, str) else self.metric.name

    @property
    def metric_outputs(self) -> list[str] | None:
        """The outputs the pipeline names for the metric; None: the default choice."""
        return None if isinstance(self.metric, str) else self.metric.outputs
