"""Applying magnitude pruning masks to a torch module (the torch side of prune.magnitude)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compressor.artifact import Artifact

if TYPE_CHECKING:
    from compressor.passes.base import PassContext
    from compressor.passes.prune.magnitude import (
        MagnitudePruningConfig,
        PruningSelection,
    )


def prunable_layers(module: Any) -> dict[str, Any]:
    """Conv and Linear layers by qualified name: the layers magnitude pruning can take."""
    from torch import nn

    return {n: m for n, m in module.named_modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear))}


def weighted_layers(module: Any) -> dict[str, Any]:
    """Every module that owns parameters itself (Conv, Linear, BatchNorm, Embedding, ...), by name."""
    return {n: m for n, m in module.named_modules() if n and any(True for _ in m.parameters(recurse=False))}


def select_prunable(module: Any, config: PruningSelection, pass_name: str,
                    supported: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, str]]:
    """The layers ``config.include``/``exclude`` select among ``supported`` ones, and why others were skipped.

    Layers with weights of a type the pass cannot prune (BatchNorm, Embedding, LayerNorm...) are
    skipped with that reason; naming one of them exactly in ``include`` is an error.
    """
    from compressor.passes.prune.magnitude import choose_layers

    supported = prunable_layers(module) if supported is None else supported
    kinds = sorted({type(m).__name__ for m in supported.values()}) or ["Conv", "Linear"]
    names = {n for n, _ in module.named_modules()}
    return choose_layers(supported, weighted_layers(module), names, kinds, config, pass_name)


def check_selection(artifact: Artifact, config: PruningSelection, pass_name: str) -> None:
    """Refuse, before any work, an include/exclude selection the pass cannot honour."""
    from compressor.frameworks._torch import load_module

    select_prunable(load_module(Path(artifact.path)), config, pass_name)


def compute_masks(layers: dict[str, Any], sparsity: float, scope: str) -> dict[str, Any]:
    """Boolean keep-masks: a global magnitude threshold, or one per layer."""
    import torch

    if sparsity <= 0:
        return {n: torch.ones_like(m.weight, dtype=torch.bool) for n, m in layers.items()}
    if scope == "global":
        scores = torch.cat([m.weight.detach().abs().flatten() for m in layers.values()])
        k = int(sparsity * scores.numel())
        threshold = torch.kthvalue(scores, k).values if k > 0 else scores.min() - 1
        return {n: m.weight.detach().abs() > threshold for n, m in layers.items()}
    masks = {}
    for n, m in layers.items():
        w = m.weight.detach().abs().flatten()
        k = int(sparsity * w.numel())
        threshold = torch.kthvalue(w, k).values if k > 0 else w.min() - 1
        masks[n] = m.weight.detach().abs() > threshold
    return masks


def apply_masks(layers: dict[str, Any], masks: dict[str, Any]) -> None:
    import torch

    with torch.no_grad():
        for n, m in layers.items():
            m.weight.mul_(masks[n])


def sparsity_report(layers: dict[str, Any]) -> dict[str, Any]:
    """Overall and per-layer fraction of exact zeros in the pruned weights."""
    per_layer, zeros, total = {}, 0, 0
    for n, m in layers.items():
        z = int((m.weight == 0).sum())
        per_layer[n] = round(z / m.weight.numel(), 4)
        zeros, total = zeros + z, total + m.weight.numel()
    return {"sparsity": round(zeros / max(total, 1), 4), "per_layer": per_layer}


def magnitude_prune(artifact: Artifact, config: MagnitudePruningConfig, ctx: PassContext, out_dir: Path) -> dict[str, Any]:
    """Prune, fine-tune with masks held (gradually, if asked), and save the pruned model folder."""
    from compressor.frameworks._torch import MODEL_JSON, load_module, save_module
    from compressor.passes._torch_fit import fit
    from compressor.passes.prune.magnitude import polynomial_sparsity

    module = load_module(Path(artifact.path))
    layers, skipped = select_prunable(module, config, "prune.magnitude")
    gradual = config.schedule == "polynomial" and config.finetune_epochs > 0
    masks = compute_masks(layers, 0.0 if gradual else config.sparsity, config.scope)
    apply_masks(layers, masks)
    history: list[float] = []
    schedule: list[float] = []  # sparsity target at the end of each epoch (gradual schedule)
    if config.finetune_epochs:
        split = ctx.data.split("training", needed_by="prune.magnitude fine-tuning")
        steps_per_epoch = -(-len(split) // config.batch_size)

        def hold(step: int, total: int) -> None:
            nonlocal masks
            if gradual and (step % config.update_every_steps == 0 or step == total):
                # reach the final sparsity at ramp_fraction of training, then fine-tune with it fixed
                target = polynomial_sparsity(config.sparsity, step, int(total * config.ramp_fraction))
                masks = compute_masks(layers, target, config.scope)
            apply_masks(layers, masks)
            if gradual and step % steps_per_epoch == 0:
                schedule.append(round(polynomial_sparsity(config.sparsity, step, int(total * config.ramp_fraction)), 4))

        history = fit(module, split, artifact.signature, epochs=config.finetune_epochs, lr=config.lr,
                      batch_size=config.batch_size, seed=ctx.seed, after_step=hold, say=ctx.say,
                      workers=config.workers)
        if gradual:  # make sure the final sparsity holds exactly
            apply_masks(layers, compute_masks(layers, config.sparsity, config.scope))
    desc = json.loads((Path(artifact.path) / MODEL_JSON).read_text())
    save_module(module, desc["factory"], desc.get("kwargs", {}), out_dir)
    report = sparsity_report(layers)
    report.update(layers_pruned=len(layers), layers_skipped=skipped, layers_skipped_count=len(skipped),
                  finetune_loss=history)
    if gradual:
        report["schedule"] = schedule
    return report
