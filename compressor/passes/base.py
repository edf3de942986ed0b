"""The Pass contract: a typed, versioned transformation ``Artifact -> Artifact``.

A pass declares the formats it accepts and the format it produces, can refuse its input early in
``check``, and does its work in ``run``, writing its model into a fresh folder it is handed. The
run step hashes, stores, verifies (parity for conversions, the metric for everything) and records
the result; a pass never touches the cache or the ledger itself.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

from compressor.artifact import Artifact, Signature
from compressor.errors import FormatChainError
from compressor.formats import Format

if TYPE_CHECKING:
    from compressor.data import DataBundle
    from compressor.measure.evaluate import Evaluator

log = logging.getLogger(__name__)


class PassConfig(BaseModel):
    """Base of every pass config: immutable, and a misspelled key is an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def only_with(self, keys: tuple[str, ...], applies: bool, condition: str) -> None:
        """Refuse keys given explicitly where they have no effect: no setting is silently ignored.

        Call from a ``model_validator(mode="after")``; ``condition`` says when they apply.
        """
        fields = type(self).model_fields
        given = [k for k in keys if k in self.model_fields_set and getattr(self, k) != fields[k].get_default(call_default_factory=True)]
        if given and not applies:
            names = " and ".join(f"'{k}'" for k in given)
            raise ValueError(f"{names} {'has' if len(given) == 1 else 'have'} no effect unless {condition}; "
                             f"remove {'it' if len(given) == 1 else 'them'} or set {condition}")


@dataclass
class PassContext:
    """What a pass may use besides its input artifact: data, evaluation, a seed, progress."""

    data: DataBundle
    evaluator: Evaluator
    seed: int = 0
    max_drop: float = 0.01
    reference_metric: float | None = None  # the pipeline's input model's metric (the budget is vs it)
    progress: Any = None  # callable(str) for a status line; may be None
    work_dir: Path | None = None  # scratch space for the pass; not kept
    batch_sizes: tuple[int, ...] = (1,)  # the pipeline's benchmark batch sizes (passes that measure speed)
    target: str = "onnxruntime:cpu"  # the pipeline's first target: where a pass that measures speed measures

    def say(self, message: str) -> None:
        """Report progress of long work (fine-tuning epochs, calibration)."""
        log.info(message)
        if self.progress is not None:
            self.progress(message)


@dataclass
class PassOutput:
    """What ``Pass.run`` returns: the model it wrote, its signature, and facts to record."""

    path: Path
    signature: Signature
    meta: dict[str, Any] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)  # goes into the ledger entry
    format: Format | None = None  # the format written, for a pass with several (``Pass.output_formats``)


class Pass:
    """Base class. Subclasses set the class attributes and implement ``run``.

    What a pass is, is declared here and nowhere else: the formats it takes and makes, whether it
    is a conversion (parity is enforced), whether it quantizes (int8 coverage is read after it),
    whether its output should be faster than its input (``expects_speedup``: slower is flagged) or
    its speed is only compared (``compares_speed``), which data splits it reads (``reads``) and
    whether it aims at the accuracy budget (``uses_budget``).
    """

    name: ClassVar[str]
    version: ClassVar[int] = 1
    config_class: ClassVar[type[PassConfig]] = PassConfig
    input_formats: ClassVar[frozenset[Format]] = frozenset()
    output_format: ClassVar[Format | None] = None  # None: same as the input
    is_conversion: ClassVar[bool] = False
    quantizes: ClassVar[bool] = False
    compares_speed: ClassVar[bool] = False  # its input is measured too, and the speed-up recorded
    expects_speedup: ClassVar[bool] = False  # a slower output than its input is flagged
    # Which data splits the pass always reads; ``reads()`` adds those its config asks for.
    data_splits: ClassVar[tuple[str, ...]] = ()
    # Settings added after the pass's version whose value here makes exactly the output it made before
    # they existed: left out of the cache key at that value, so earlier results stay valid.
    key_neutral: ClassVar[dict[str, Any]] = {"workers": 1}

    def __init__(self, config: PassConfig | None = None) -> None:
        self.config = config if config is not None else self.config_class()

    def reads(self) -> tuple[str, ...]:
        """The data splits this pass reads with its config; they enter its cache key."""
        return self.data_splits

    def lowers_precision(self) -> bool:
        """Whether this pass, as configured, makes lower-precision arithmetic (its output should beat
        a sibling variant whose same pass keeps full precision)."""
        return self.quantizes

    def uses_budget(self) -> bool:
        """Whether the pass aims at the pipeline's budget (its result then depends on it)."""
        return False

    def measures_speed(self) -> bool:
        """Whether the pass, as configured, times the model to decide (its result then depends on the
        machine and the pipeline's batch sizes)."""
        return False

    def produces(self, input_format: Format) -> Format:
        """The format this pass turns ``input_format`` into; raise when it cannot take it."""
        if input_format not in self.input_formats:
            from compressor.passes.registry import conversions_between

            allowed = ", ".join(sorted(f.value for f in self.input_formats))
            ways = conversions_between(input_format, self.input_formats)
            fix = (f"put {' or '.join(ways)} before it" if ways else
                   f"no conversion pass turns a '{input_format.value}' model into one it takes: "
                   f"start the pipeline from a model in format {allowed.replace(', ', ' or ')}")
            raise FormatChainError(
                f"pass '{self.name}' cannot take a model in format '{input_format.value}'; it accepts {allowed}: {fix}."
            )
        return self.output_format or input_format

    def output_formats(self, input_format: Format) -> frozenset[Format]:
        """Every format this pass may write for ``input_format`` (one, unless it decides while running, e.g.
        a factory with new widths or a .pt2 program); the pipeline's chain check needs the next pass to take all."""
        return frozenset({self.produces(input_format)})

    def fit_to_chain(self, later: list[Pass]) -> None:
        """Settle settings that depend on the passes after this one in its variant, or refuse the
        combination (raise ConfigError) — called once per variant when the pipeline is read, before
        any work. Default: nothing depends on them."""

    def parity_tolerance(self) -> float | None:
        """Max abs error allowed vs the parent on the parity batch; None: recorded, not enforced."""
        return None

    def slow_reason(self, entry: dict[str, Any], cpu: dict[str, Any]) -> str:
        """A best guess at why this step's output was not faster, from its ledger ``entry`` and the CPU."""
        return "the rewritten graph has no faster kernels on this runtime"

    def check(self, artifact: Artifact, ctx: PassContext) -> None:
        """Refuse early (before any work) what this pass cannot do; default: format and data splits."""
        self.produces(artifact.format)
        for role in self.reads():
            ctx.data.split(role, needed_by=f"pass '{self.name}'")  # raises DataError when empty

    def run(self, artifact: Artifact, ctx: PassContext, out_dir: Path) -> PassOutput:
        """Transform ``artifact``, writing the new model under ``out_dir``."""
        raise NotImplementedError


ONNX_INT8_PASSES = frozenset({"quantize.onnx.static", "quantize.onnx.dynamic"})


class QuantizePass(Pass):
    """A pass that lowers precision: its int8 coverage is read, and its output should be faster."""

    quantizes: ClassVar[bool] = True
    compares_speed: ClassVar[bool] = True
    expects_speedup: ClassVar[bool] = True

    def fit_to_chain(self, later: list[Pass]) -> None:
        # ORT's static and dynamic quantizers refuse (or corrupt) a graph that is already quantized
        if self.name in ONNX_INT8_PASSES:
            again = next((p.name for p in later if p.name in ONNX_INT8_PASSES), None)
            if again is not None:
                from compressor.errors import ConfigError

                raise ConfigError(
                    f"{again} follows {self.name} in the same variant, which would quantize an already "
                    f"quantized graph (ONNX Runtime's quantizer cannot); keep one of them, or make two variants"
                )

    def coverage_reason(self, entry: dict[str, Any]) -> str | None:
        """Too little of the compute in int8, read from the step's coverage entry."""
        coverage = entry.get("coverage") or {}
        share = coverage.get("int8_mac_share")
        if share is None or share >= 0.5:
            return None
        largest = ", ".join(f"{f['node']} ({f['op_type']})" for f in coverage.get("float_compute", [])[:3])
        return (f"only {share:.0%} of the MACs run in int8 (largest float compute: {largest or 'none'}); the "
                f"Quantize/Dequantize conversions around the float part cost more than the int8 part saves")

    def slow_reason(self, entry: dict[str, Any], cpu: dict[str, Any]) -> str:
        reason = self.coverage_reason(entry)
        if reason:
            return reason
        if not cpu.get("int8_dot_product", False):
            return "this CPU has no int8 dot-product instructions (VNNI/dotprod), so int8 kernels gain little"
        return "quantize/dequantize overhead outweighs the int8 gain at this model size and batch"


class PrunePass(Pass):
    """A pass that removes weights: its output should be faster than its input."""

    compares_speed: ClassVar[bool] = True
    expects_speedup: ClassVar[bool] = True
