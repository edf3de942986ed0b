"""The Pass contract: a typed, versioned transformation ``Artifact -> Artifact``.

A pass declares the formats it accepts and the format it produces, can refuse its input early in
``check``, and does its work in ``run``, writing its model into a fresh folder it is handed. The
runner hashes, stores, verifies (parity for conversions, the metric for everything) and records
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
    from compressor.evaluate import Evaluator

log = logging.getLogger(__name__)


class PassConfig(BaseModel):
    """Base of every pass config: immutable, and a misspelled key is an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)


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


class Pass:
    """Base class. Subclasses set the class attributes and implement ``run``."""

    name: ClassVar[str]
    version: ClassVar[int] = 1
    config_class: ClassVar[type[PassConfig]] = PassConfig
    input_formats: ClassVar[frozenset[Format]] = frozenset()
    output_format: ClassVar[Format | None] = None  # None: same as the input
    is_conversion: ClassVar[bool] = False
    # Which data splits the pass reads; they enter its cache key.
    data_splits: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: PassConfig | None = None) -> None:
        self.config = config if config is not None else self.config_class()

    def produces(self, input_format: Format) -> Format:
        """The format this pass turns ``input_format`` into; raise when it cannot take it."""
        if input_format not in self.input_formats:
            allowed = ", ".join(sorted(f.value for f in self.input_formats))
            raise FormatChainError(
                f"pass '{self.name}' cannot take a '{input_format.value}' model; it accepts "
                f"{allowed}. Put a conversion pass (e.g. convert.onnx) before it."
            )
        return self.output_format or input_format

    def parity_tolerance(self) -> float | None:
        """Max abs error allowed vs the parent on the parity batch; None: recorded, not enforced."""
        return None

    def check(self, artifact: Artifact, ctx: PassContext) -> None:
        """Refuse early (before any work) what this pass cannot do; default: format only."""
        self.produces(artifact.format)
        for role in self.data_splits:
            ctx.data.split(role, needed_by=f"pass '{self.name}'")  # raises DataError when empty

    def run(self, artifact: Artifact, ctx: PassContext, out_dir: Path) -> PassOutput:
        """Transform ``artifact``, writing the new model under ``out_dir``."""
        raise NotImplementedError
