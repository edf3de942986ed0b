"""prune.structured: remove whole channels, units and attention heads, coupled groups together.

Built on Torch-Pruning's dependency graph (``compressor.passes._torch_channels``): the channels tied
by a residual add, a concatenation, a depthwise conv, BatchNorm / LayerNorm, a flatten into a Linear
or an attention head are removed as one group. The result is physically smaller (fewer parameters
and MACs, smaller dense kernels). It is saved so that it reloads without guessing: as the same
factory with new width kwargs when the factory declares them (``WIDTH_KWARGS``; see
``compressor.passes.widths``) and they rebuild the pruned shapes exactly, otherwise as a
``torch.export`` program (.pt2). ``save_as`` forces one of the two.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from compressor.artifact import Artifact
from compressor.formats import Format
from compressor.passes.base import PassConfig, PassContext, PassOutput, PrunePass


class StructuredPruningConfig(PassConfig):
    """Settings of ``prune.structured``."""

    sparsity: float = Field(0.5, ge=0.0, lt=1.0, description="fraction of each group's channels / units removed "
                                                             "(scope: global: of all channels, ranked together)")
    importance: Literal["l1", "l2", "taylor", "hessian"] = Field(
        "l1", description="channel ranking: L1 / L2 norm of the group's weights, Taylor (|weight x gradient| of the "
                          "cross entropy on training batches), or hessian (weight^2 x squared gradient of a random "
                          "projection of the outputs: how far removing a channel moves them; needs no labels)")
    scope: Literal["layer", "global"] = Field("layer", description="ratio per group (layer) or one global ranking")
    round_to: int | None = Field(None, ge=1, description="keep channel counts a multiple of this (8, 16: fast kernels)")
    heads: float = Field(0.0, ge=0.0, lt=1.0, description="fraction of attention heads removed (q/k/v/out together)")
    steps: int = Field(1, ge=1, description="prune in this many equal steps, fine-tuning after each")
    include: list[str] = Field(default_factory=lambda: ["*"], description="layer name patterns whose channels may go")
    ignore: list[str] = Field(default_factory=list, description="layer name patterns kept whole (and their groups)")
    save_as: Literal["auto", "factory", "torch_export"] = Field(
        "auto", description="auto: factory + new width kwargs when the factory declares them, else a .pt2 program")
    reconstruct: bool = Field(False, description="after each step, refit the layers whose inputs shrank (a Transformer "
                                                 "block's output projections, 1x1 projection convs) by least squares "
                                                 "so their outputs match the unpruned model's on training batches")
    finetune_epochs: int = Field(0, ge=0, description="epochs of fine-tuning on the training split after each step")
    lr: float = Field(1e-3, gt=0)
    batch_size: int = Field(64, ge=1)
    workers: int = Field(1, ge=1, description="data-parallel training workers through Ray Train (1: this process)")

    @model_validator(mode="after")
    def _no_ignored_keys(self) -> StructuredPruningConfig:
        if self.sparsity == 0 and self.heads == 0:
            raise ValueError("sparsity: 0 and heads: 0 remove nothing; set sparsity (channels) or heads (attention)")
        trains = self.finetune_epochs > 0
        self.only_with(("lr", "workers"), trains, "finetune_epochs > 0")
        self.only_with(("batch_size",), trains or self.reconstruct or self.importance in ("taylor", "hessian"),
                       "finetune_epochs > 0, reconstruct or importance: taylor / hessian")
        self.only_with(("round_to",), self.sparsity > 0, "sparsity > 0")
        return self


class PruneStructured(PrunePass):
    """Remove the lowest-ranked channel groups (and heads) of a torch model; fine-tune between steps."""

    name = "prune.structured"
    version = 3
    config_class = StructuredPruningConfig
    input_formats: ClassVar[frozenset[Format]] = frozenset({Format.TORCH})
    key_neutral: ClassVar[dict[str, Any]] = {"workers": 1, "reconstruct": False}

    def slow_reason(self, entry: dict[str, Any], cpu: dict[str, Any]) -> str:
        widths = (entry.get("report") or {}).get("widths") or {}
        odd = sorted(n for n, (_, after) in widths.items() if after % 8)
        if odd and not (entry.get("config") or {}).get("round_to"):
            return (f"{len(odd)} of {len(widths)} pruned layers have channel counts that are not multiples of 8 "
                    f"(e.g. '{odd[0]}'), which pushes the runtime's kernels off their vectorized paths; set round_to: 8 "
                    f"or 16")
        return ("the MACs it removed did not show at this model size and batch: per-op framework overhead "
                "dominates, or the measurement is noisy (see cv); compare the exported ONNX step")

    def reads(self) -> tuple[str, ...]:
        reads = self.config.finetune_epochs or self.config.reconstruct or self.config.importance in ("taylor", "hessian")
        return ("training",) if reads else ()

    def produces(self, input_format: Format) -> Format:
        super().produces(input_format)
        return Format.TORCH_EXPORT if self.config.save_as == "torch_export" else Format.TORCH

    def output_formats(self, input_format: Format) -> frozenset[Format]:
        if self.config.save_as == "auto":
            self.produces(input_format)
            return frozenset({Format.TORCH, Format.TORCH_EXPORT})
        return super().output_formats(input_format)

    def check(self, artifact: Artifact, ctx: PassContext) -> None:
        from compressor.passes.prune._torch_structured import check_structured

        super().check(artifact, ctx)
        check_structured(artifact, self.config)

    def run(self, artifact: Artifact, ctx: PassContext, out_dir: Path) -> PassOutput:
        from compressor.passes.prune._torch_structured import structured_prune

        path, report, meta = structured_prune(artifact, self.config, ctx, out_dir)
        ctx.say(f"params {report['params_before']} -> {report['params_after']}, "
                f"MACs {report['macs_before']} -> {report['macs_after']}")
        fmt = Format.TORCH_EXPORT if report["saved_as"] == "torch_export" else Format.TORCH
        return PassOutput(path=path, signature=artifact.signature, report=report, meta=meta, format=fmt)
