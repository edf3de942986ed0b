"""prune.structured: remove whole conv filters / linear units ranked by norm, following the graph.

The result is physically smaller (fewer parameters and MACs, smaller dense kernels), unlike
unstructured sparsity. It is saved so that it reloads without guessing: as the same factory with
new width kwargs (the factory declares ``WIDTH_KWARGS``; see ``compressor.passes.widths``), or as a
``torch.export`` program (``save_as: torch_export``) for models whose factory cannot express the
new widths.
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

    sparsity: float = Field(0.5, ge=0.0, lt=1.0, description="fraction of each selected layer's filters / units removed")
    norm: Literal["l1", "l2"] = Field("l1", description="filter ranking: L1 or L2 norm of its weights")
    include: list[str] = Field(default_factory=lambda: ["*"], description="layer name patterns to prune")
    exclude: list[str] = Field(default_factory=list, description="layer name patterns to keep whole")
    save_as: Literal["factory", "torch_export"] = Field(
        "factory", description="factory + new width kwargs (factory declares WIDTH_KWARGS), or a .pt2 program"
    )
    finetune_epochs: int = Field(0, ge=0, description="epochs of fine-tuning on the training split after pruning")
    lr: float = Field(1e-3, gt=0)
    batch_size: int = Field(64, ge=1)
    workers: int = Field(1, ge=1, description="data-parallel training workers through Ray Train (1: this process)")

    @model_validator(mode="after")
    def _no_ignored_keys(self) -> StructuredPruningConfig:
        self.only_with(("lr", "batch_size", "workers"), self.finetune_epochs > 0, "finetune_epochs > 0")
        return self


class PruneStructured(PrunePass):
    """Remove the lowest-norm filters of Conv2d / units of Linear layers and everything they feed."""

    name = "prune.structured"
    version = 1
    config_class = StructuredPruningConfig
    input_formats: ClassVar[frozenset[Format]] = frozenset({Format.TORCH})

    def slow_reason(self, entry: dict[str, Any], cpu: dict[str, Any]) -> str:
        return ("the MACs it removed did not show at this model size and batch: per-op framework overhead "
                "dominates, or the measurement is noisy (see cv); compare the exported ONNX step")

    def reads(self) -> tuple[str, ...]:
        return ("training",) if self.config.finetune_epochs else ()

    def produces(self, input_format: Format) -> Format:
        super().produces(input_format)
        return Format.TORCH_EXPORT if self.config.save_as == "torch_export" else Format.TORCH

    def check(self, artifact: Artifact, ctx: PassContext) -> None:
        from compressor.passes.prune._torch_structured import prepare
        from compressor.passes.widths import pruned_kwargs

        super().check(artifact, ctx)
        _, deps, _ = prepare(artifact, self.config)
        if self.config.save_as == "factory":
            import json

            desc = json.loads((Path(artifact.path) / "model.json").read_text())
            pruned_kwargs(desc["factory"], desc.get("kwargs", {}), {n: 1 for n in deps})

    def run(self, artifact: Artifact, ctx: PassContext, out_dir: Path) -> PassOutput:
        from compressor.passes.prune._torch_structured import structured_prune

        path, report, meta = structured_prune(artifact, self.config, ctx, out_dir)
        ctx.say(f"params {report['params_before']} -> {report['params_after']}, "
                f"MACs {report['macs_before']} -> {report['macs_after']}")
        return PassOutput(path=path, signature=artifact.signature, report=report, meta=meta)

