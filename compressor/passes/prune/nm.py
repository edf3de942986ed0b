"""prune.nm: N:M semi-structured sparsity (2:4 by default), fine-tuned with the mask held.

In every group of M consecutive weights along a layer's input dimension, only the N largest in
magnitude are kept. What it buys depends on the runtime, and the pass report says so plainly:

- CPU runtimes (ONNX Runtime, PyTorch CPU, LiteRT) run the weights as dense tensors, so the model
  is exactly as large on disk and as fast; only a compressed download shrinks (gzip finds the zeros).
- GPUs with sparse tensor cores (NVIDIA Ampere and later, compute capability >= 8.0) run 2:4
  sparse matrix multiplies at up to twice the dense math throughput and store the weights in about
  half the memory plus a small index (``torch.sparse.to_sparse_semi_structured``, TensorRT with
  sparsity enabled). End-to-end gains are smaller than 2x where layers are memory- or launch-bound.
"""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field, model_validator

from compressor.artifact import Artifact
from compressor.formats import Format
from compressor.passes.base import PassConfig, PassContext, PassOutput, PrunePass


class NMPruningConfig(PassConfig):
    """Settings of ``prune.nm``."""

    n: int = Field(2, ge=1, description="weights kept in each group")
    m: int = Field(4, ge=2, description="group size along the input dimension")
    finetune_epochs: int = Field(0, ge=0, description="epochs of fine-tuning with the mask held")
    lr: float = Field(1e-3, gt=0)
    batch_size: int = Field(64, ge=1)
    workers: int = Field(1, ge=1, description="data-parallel training workers through Ray Train (1: this process)")
    include: list[str] = Field(default_factory=lambda: ["*"], description="layer name patterns to prune")
    exclude: list[str] = Field(default_factory=list, description="layer name patterns to leave dense")

    @model_validator(mode="after")
    def _n_below_m(self) -> NMPruningConfig:
        if self.n >= self.m:
            raise ValueError(f"n ({self.n}) must be smaller than m ({self.m}); 2:4 keeps 2 of every 4 weights")
        return self

    @model_validator(mode="after")
    def _no_ignored_keys(self) -> NMPruningConfig:
        self.only_with(("lr", "batch_size", "workers"), self.finetune_epochs > 0, "finetune_epochs > 0")
        return self


class PruneNm(PrunePass):
    """Keep the N largest of every M weights along the input dimension of Conv and Linear layers."""

    name = "prune.nm"
    version = 1
    config_class = NMPruningConfig
    input_formats: ClassVar[frozenset[Format]] = frozenset({Format.TORCH})

    def reads(self) -> tuple[str, ...]:
        return ("training",) if self.config.finetune_epochs else ()

    def check(self, artifact: Artifact, ctx: PassContext) -> None:
        from compressor.passes.prune._torch import check_selection

        super().check(artifact, ctx)
        check_selection(artifact, self.config, self.name)

    def run(self, artifact: Artifact, ctx: PassContext, out_dir: Path) -> PassOutput:
        from compressor.passes.prune._torch_nm import nm_prune

        report = nm_prune(artifact, self.config, ctx, out_dir)
        return PassOutput(path=out_dir, signature=artifact.signature, report=report,
                          meta={"sparsity": report["sparsity"], "nm": f"{self.config.n}:{self.config.m}"})
