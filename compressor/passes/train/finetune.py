"""train.finetune: transfer learning — freeze a backbone, replace the head, train on the training split.

``freeze: backbone`` freezes every parameter outside the head (``head.module`` when given, otherwise
the model's last layer with weights); a list of glob patterns freezes the parameters whose names
match. BatchNorm layers that are entirely frozen keep their running statistics. ``head`` replaces
a Linear (or 1x1 Conv) layer by a fresh one with ``num_classes`` outputs; the factory must take a
keyword argument (``head.kwarg``, default ``num_classes``) that rebuilds that shape, and the pass
records its new value so the output reloads without guessing.
"""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

from compressor.artifact import Artifact
from compressor.formats import Format
from compressor.passes.base import Pass, PassConfig, PassContext, PassOutput


class HeadSpec(BaseModel):
    """The layer to replace and its new output width."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    module: str = Field(..., description="qualified name of the head layer, e.g. 'classifier.1'")
    num_classes: int = Field(..., ge=1)
    kwarg: str = Field("num_classes", description="the factory kwarg that sets the head's width")


class FineTuneConfig(PassConfig):
    """Settings of ``train.finetune``."""

    epochs: int = Field(3, ge=1)
    lr: float = Field(1e-3, gt=0)
    batch_size: int = Field(64, ge=1)
    workers: int = Field(1, ge=1, description="data-parallel training workers through Ray Train (1: this process)")
    freeze: Union[Literal["backbone"], list[str]] = Field(
        "backbone", description="'backbone' (all but the head) or parameter-name glob patterns; [] trains all"
    )
    head: HeadSpec | None = Field(None, description="replace this layer by a fresh one with num_classes outputs")


class TrainFinetune(Pass):
    """Fine-tune a torch model on the training split, optionally with a new head and a frozen backbone."""

    name = "train.finetune"
    version = 1
    config_class = FineTuneConfig
    input_formats: ClassVar[frozenset[Format]] = frozenset({Format.TORCH})
    data_splits = ("training",)

    def check(self, artifact: Artifact, ctx: PassContext) -> None:
        from compressor.errors import DataError
        from compressor.passes.train._torch_finetune import prepare

        super().check(artifact, ctx)
        if ctx.data.split("training").labels is None:
            raise DataError("train.finetune needs labels, but the training split has none; add 'y' to the data.")
        prepare(artifact, self.config, ctx.seed)

    def run(self, artifact: Artifact, ctx: PassContext, out_dir: Path) -> PassOutput:
        from compressor.passes.train._torch_finetune import finetune

        signature, report = finetune(artifact, self.config, ctx, out_dir)
        return PassOutput(path=out_dir, signature=signature, report=report)
