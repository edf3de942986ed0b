"""prune.magnitude: unstructured magnitude pruning (global or per layer), then fine-tuning."""
from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

from pydantic import Field, model_validator

from compressor.artifact import Artifact
from compressor.errors import PassError
from compressor.formats import Format
from compressor.passes.base import PassConfig, PassContext, PassOutput, PrunePass

# input format -> framework module with check_selection(artifact, config, name) and
# magnitude_prune(artifact, config, ctx, out_dir) -> report; and the model file it writes in out_dir
ADAPTERS = {Format.TORCH: "compressor.passes.prune._torch", Format.KERAS: "compressor.passes.prune._tf"}
MODEL_FILES = {Format.KERAS: "model.h5"}


class MagnitudePruningConfig(PassConfig):
    """Settings of ``prune.magnitude``."""

    sparsity: float = Field(0.5, ge=0.0, lt=1.0, description="fraction of selected weights set to zero")
    scope: Literal["global", "layer"] = Field(
        "global", description="one threshold across all selected layers, or the same sparsity in each"
    )
    schedule: Literal["oneshot", "polynomial"] = Field(
        "oneshot", description="prune at once, or raise sparsity gradually (cubic) while fine-tuning"
    )
    finetune_epochs: int = Field(0, ge=0, description="epochs of fine-tuning on the training split")
    lr: float = Field(1e-3, gt=0)
    batch_size: int = Field(64, ge=1)
    workers: int = Field(1, ge=1, description="data-parallel training workers through Ray Train (1: this process)")
    ramp_fraction: float = Field(
        0.75, gt=0.0, le=1.0,
        description="polynomial schedule: fraction of fine-tuning steps over which sparsity rises to its final value",
    )
    update_every_steps: int = Field(10, ge=1, description="polynomial schedule: recompute masks every N steps")
    include: list[str] = Field(default_factory=lambda: ["*"], description="layer name patterns to prune")
    exclude: list[str] = Field(default_factory=list, description="layer name patterns to leave dense")

    @model_validator(mode="after")
    def _no_ignored_keys(self) -> MagnitudePruningConfig:
        self.only_with(("ramp_fraction", "update_every_steps"), self.schedule == "polynomial", "schedule: polynomial")
        self.only_with(("lr", "batch_size", "workers"), self.finetune_epochs > 0, "finetune_epochs > 0")
        return self


def is_pattern(text: str) -> bool:
    """Whether an include/exclude entry is a glob pattern rather than one exact layer name."""
    return any(c in text for c in "*?[")


def select_layers(names: list[str], include: list[str], exclude: list[str]) -> tuple[list[str], dict[str, str]]:
    """Layers matched by ``include`` and not by ``exclude``; the rest with the reason skipped."""
    chosen, skipped = [], {}
    for name in names:
        if not any(fnmatch.fnmatchcase(name, p) for p in include):
            skipped[name] = "not matched by include"
        elif any(fnmatch.fnmatchcase(name, p) for p in exclude):
            skipped[name] = "matched by exclude"
        else:
            chosen.append(name)
    return chosen, skipped


class PruningSelection(Protocol):
    """What the layer choice reads from any pruning config (magnitude, N:M, structured)."""

    include: list[str]
    exclude: list[str]


def choose_layers(supported: dict[str, Any], weighted: dict[str, Any], all_names: set[str], kinds: list[str],
                  config: PruningSelection, pass_name: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The framework-neutral layer choice: ``supported`` layers picked by include / exclude.

    ``weighted`` are all layers with weights; those of a type the pass cannot prune are skipped with
    that reason, and naming one exactly in ``include`` is an error, as is naming a layer that does
    not exist. Returns the chosen layers and, for every other weighted layer, why it was skipped.
    """
    skipped: dict[str, str] = {}
    for name, layer in weighted.items():
        if name in supported:
            continue
        if name in config.include and not is_pattern(name):
            raise PassError(
                f"{pass_name} cannot prune layer '{name}' of type {type(layer).__name__}; it prunes "
                f"{', '.join(kinds)} layers. Remove '{name}' from include."
            )
        skipped[name] = f"unsupported type {type(layer).__name__}"
    unknown = [p for p in config.include + config.exclude if not is_pattern(p) and p not in all_names]
    if unknown:
        raise PassError(
            f"{pass_name} include/exclude names layer '{unknown[0]}', which the model does not have; "
            f"layers it can prune: {', '.join(list(supported)[:12]) or 'none'}."
        )
    chosen, not_selected = select_layers(list(supported), config.include, config.exclude)
    skipped.update(not_selected)
    if not chosen:
        raise PassError(
            f"{pass_name} found no layer to prune (prunable layers: {list(supported) or 'none'}; "
            f"include={config.include}, exclude={config.exclude}); widen include or narrow exclude."
        )
    return {n: supported[n] for n in chosen}, skipped


def polynomial_sparsity(final: float, step: int, total: int, initial: float = 0.0, power: int = 3) -> float:
    """Zhu & Gupta's gradual schedule: sparsity rises fast at first, then levels off at ``final``."""
    if total <= 0:
        return final
    frac = min(step / total, 1.0)
    return final + (initial - final) * (1.0 - frac) ** power


class PruneMagnitude(PrunePass):
    """Zero the smallest-magnitude weights of Conv and Linear layers; fine-tune with masks held."""

    name = "prune.magnitude"
    version = 2
    config_class = MagnitudePruningConfig
    input_formats: ClassVar[frozenset[Format]] = frozenset(ADAPTERS)

    def slow_reason(self, entry: dict[str, Any], cpu: dict[str, Any]) -> str:
        return "unstructured zeros do not skip work in dense kernels; prune.structured removes whole filters"

    def reads(self) -> tuple[str, ...]:
        return ("training",) if self.config.finetune_epochs else ()

    @staticmethod
    def adapter(fmt: Format) -> Any:
        import importlib

        return importlib.import_module(ADAPTERS[fmt])

    def check(self, artifact: Artifact, ctx: PassContext) -> None:
        super().check(artifact, ctx)
        self.adapter(artifact.format).check_selection(artifact, self.config, self.name)

    def run(self, artifact: Artifact, ctx: PassContext, out_dir: Path) -> PassOutput:
        report = self.adapter(artifact.format).magnitude_prune(artifact, self.config, ctx, out_dir)
        meta = {"sparsity": report["sparsity"], **({"keras": report["keras"]} if "keras" in report else {})}
        return PassOutput(path=out_dir / MODEL_FILES.get(artifact.format, ""), signature=artifact.signature,
                          report=report, meta=meta)
