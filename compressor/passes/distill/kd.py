"""distill.kd: knowledge distillation of the pipeline's current model into a smaller student.

The teacher is the current artifact (a torch model folder or a torch.export program). The student
is built from ``student`` (a factory, with ``student_kwargs``) or from ``width``: the teacher's
factory with every width kwarg it declares in ``WIDTH_KWARGS`` multiplied (see
``compressor.passes.widths``; weights from a seeded random init), or, when the factory declares
none, a pruned copy of the teacher (``width`` of each channel group kept and ``heads`` of the
attention heads removed, on Torch-Pruning as ``prune.structured``; the teacher's own weights). It is
trained on the training split with Hinton et al.'s loss (``loss: kl``)::

    alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T)) + (1 - alpha) * CE(student, labels)

or, for embedding models, ``loss: cosine`` (1 - cosine to the teacher's outputs) or ``loss: mse``;
plus, optionally, ``feature_weight`` * MSE between teacher features and an adapter (1x1 conv or
linear) of student features for each ``features`` pair ``[teacher_layer, student_layer]`` (a
Transformer block's hidden states, batch x tokens x width, are compared directly when the widths
match). A pruned copy ranks its channels by ``importance`` (``hessian``: label-free, how far removing
a channel moves the outputs) and, with ``reconstruct`` (the default), starts from a least-squares
refit of the layers whose inputs shrank, so that their outputs match the teacher's. ``trim_padding``
trains encoders on each batch's real length only. The output is a torch model folder (the
student's factory, kwargs and trained weights), or a .pt2 program for a pruned copy of the teacher.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from compressor.artifact import Artifact
from compressor.formats import Format
from compressor.passes.base import Pass, PassConfig, PassContext, PassOutput


class DistillConfig(PassConfig):
    """Settings of ``distill.kd``."""

    student: str | None = Field(None, description="'package.module:Factory' building the student")
    student_kwargs: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of the student factory")
    width: float | None = Field(
        None, gt=0.0, le=1.0, description="student = teacher factory with width kwargs x this (0.5 without 'student')"
    )
    heads: float = Field(0.0, ge=0.0, lt=1.0, description="with width and no width kwargs: fraction of the teacher's "
                                                          "attention heads the pruned student loses")
    importance: Literal["l1", "l2", "hessian"] = Field(
        "l1", description="with width and no width kwargs: how the pruned copy ranks channels and heads (hessian: "
                          "how far removing one moves the outputs, from a few training batches; no labels needed)")
    round_to: int | None = Field(None, ge=1, description="with width and no width kwargs: keep the pruned copy's "
                                                         "channel counts a multiple of this (8, 16)")
    reconstruct: bool = Field(True, description="with width and no width kwargs: before training, refit the pruned "
                                                "copy's layers whose inputs shrank (MLP and attention output "
                                                "projections) by least squares to the teacher's outputs")
    trim_padding: bool = Field(False, description="batch sequences of similar length and cut token inputs after each "
                                                  "batch's longest (its attention_mask): encoders train without "
                                                  "computing the padding")
    loss: Literal["kl", "cosine", "mse"] = Field(
        "kl", description="kl: Hinton's soft targets (+ CE); cosine / mse: match the teacher's outputs (embeddings)")
    temperature: float = Field(4.0, gt=0.0, description="softmax temperature T of the soft targets")
    alpha: float = Field(0.9, ge=0.0, le=1.0, description="weight of the soft-target loss (1 - alpha: hard labels)")
    epochs: int = Field(5, ge=1)
    lr: float = Field(1e-3, gt=0)
    schedule: Literal["constant", "cosine"] = Field(
        "constant", description="learning rate: constant, or cosine (warm-up over 5% of the steps, then decay to 0)")
    batch_size: int = Field(64, ge=1)
    workers: int = Field(1, ge=1, description="data-parallel training workers through Ray Train (1: this process)")
    features: list[tuple[str, str]] = Field(
        default_factory=list, description="[teacher_layer, student_layer] pairs whose outputs are matched (MSE)"
    )
    feature_weight: float = Field(1.0, ge=0.0, description="weight of the feature-matching loss")

    @model_validator(mode="after")
    def _one_student(self) -> DistillConfig:
        if self.student is not None and self.width is not None:
            raise ValueError("give one of 'student' (a factory) or 'width' (a multiplier on the teacher's), not both")
        if self.student_kwargs and self.student is None:
            raise ValueError("'student_kwargs' needs 'student'")
        self.only_with(("feature_weight",), bool(self.features), "features: [[teacher_layer, student_layer], ...]")
        self.only_with(("heads", "importance", "round_to", "reconstruct"), self.student is None,
                       "width is used (no 'student')")
        self.only_with(("temperature", "alpha"), self.loss == "kl", "loss: kl")
        return self

    @property
    def student_width(self) -> float:
        """The width multiplier used when no ``student`` factory is given."""
        return 0.5 if self.width is None else self.width


class DistillKd(Pass):
    """Train a student on the teacher's softened outputs and the labels."""

    name = "distill.kd"
    version = 4
    config_class = DistillConfig
    input_formats: ClassVar[frozenset[Format]] = frozenset({Format.TORCH, Format.TORCH_EXPORT})
    output_format = Format.TORCH
    data_splits = ("training",)
    compares_speed = True
    key_neutral: ClassVar[dict[str, Any]] = {"workers": 1, "schedule": "constant"}

    def check(self, artifact: Artifact, ctx: PassContext) -> None:
        from compressor.passes.distill._torch import check_student

        super().check(artifact, ctx)
        if self.config.loss == "kl" and self.config.alpha < 1.0 and ctx.data.split("training").labels is None:
            from compressor.errors import DataError

            raise DataError(f"distill.kd alpha={self.config.alpha} needs labels, but the training split has none; "
                            f"set alpha: 1.0 (soft targets only) or add labels ('y') to the data.")
        check_student(artifact, self.config, ctx.seed)

    def run(self, artifact: Artifact, ctx: PassContext, out_dir: Path) -> PassOutput:
        from compressor.passes.distill._torch import distill

        path, report, meta = distill(artifact, self.config, ctx, out_dir)
        fmt = Format.TORCH_EXPORT if path.suffix == ".pt2" else Format.TORCH
        return PassOutput(path=path, signature=artifact.signature, report=report, meta=meta, format=fmt)

    def output_formats(self, input_format: Format) -> frozenset[Format]:
        formats = super().output_formats(input_format)
        # width: on a factory without width kwargs, the student is a pruned copy of the teacher (.pt2)
        return formats if self.config.student else formats | {Format.TORCH_EXPORT}
