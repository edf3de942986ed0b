"""The torch side of prune.structured: plan on Torch-Pruning, prune in steps with fine-tuning between,
and save as the factory with new widths or as a .pt2 program."""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compressor.errors import PassError, first_line

if TYPE_CHECKING:
    from compressor.artifact import Artifact
    from compressor.passes._torch_channels import ChannelSettings
    from compressor.passes.base import PassContext
    from compressor.passes.prune.structured import StructuredPruningConfig

TAYLOR_BATCHES = 4  # training batches whose gradients rank channels for importance: taylor
RECONSTRUCT_BATCHES = 12  # training batches the least-squares refit (reconstruct: true) reads


def settings_of(config: StructuredPruningConfig) -> ChannelSettings:
    """The engine's settings from the pass config."""
    from compressor.passes._torch_channels import ChannelSettings

    return ChannelSettings(ratio=config.sparsity, importance=config.importance, scope=config.scope,
                           round_to=config.round_to, heads=config.heads, steps=config.steps,
                           include=tuple(config.include), ignore=tuple(config.ignore), who="prune.structured")


def check_structured(artifact: Artifact, config: StructuredPruningConfig) -> None:
    """Refuse before any work: a model Torch-Pruning cannot trace or prune consistently, settings that select
    nothing, a factory that cannot hold new widths when ``save_as: factory`` asks for it."""
    import dataclasses

    from compressor.frameworks._torch import load_module, recorded_factory, sample_inputs
    from compressor.passes._torch_channels import prune_channels
    from compressor.passes.widths import declared_widths

    # a dry run on this check's own copy: every group Torch-Pruning cannot carry through fails here, not
    # after training (Taylor ranks by gradients; the shapes, all this checks, are the same by L1)
    settings = dataclasses.replace(settings_of(config), importance="l1")
    prune_channels(load_module(Path(artifact.path)), sample_inputs(artifact.signature, batch=2), settings)
    if config.save_as == "factory":
        factory, _ = recorded_factory(Path(artifact.path))
        if not declared_widths(factory):
            raise PassError(f"prune.structured save_as: factory needs factory '{factory}' to declare its width kwargs "
                            f"(WIDTH_KWARGS = {{'kwarg': 'layer'}}); it declares none. Use save_as: auto or torch_export.")


def taylor_grads(split: Any, signature: Any, batch_size: int, seed: int) -> Any:
    """A function that accumulates cross-entropy gradients of a few training batches (Taylor importance)."""
    import numpy as np
    import torch.nn.functional as F

    from compressor.errors import DataError
    from compressor.passes._torch_fit import pinned_threads, to_tensors, training_threads

    if split.labels is None:
        raise DataError("prune.structured importance: taylor needs labels in the training split (its gradients come "
                        "from the cross entropy); add 'y' to the data or use importance: l1 / l2.")
    order = np.random.default_rng(seed).permutation(len(split))[:batch_size * TAYLOR_BATCHES]

    def accumulate(module: Any) -> None:
        import torch

        module.eval()
        with pinned_threads(training_threads()):
            for start in range(0, len(order), batch_size):
                idx = order[start:start + batch_size]
                inputs = to_tensors(signature, {k: v[idx] for k, v in split.inputs.items()})
                F.cross_entropy(module(*inputs), torch.from_numpy(split.labels[idx])).backward()

    return accumulate


def training_batches(split: Any, signature: Any, batch_size: int, count: int, seed: int) -> list[tuple[Any, ...]]:
    """``count`` seeded batches of the training split as input tensors."""
    import numpy as np

    from compressor.passes._torch_fit import to_tensors

    order = np.random.default_rng(seed).permutation(len(split))[:batch_size * count]
    return [tuple(to_tensors(signature, {k: v[order[i:i + batch_size]] for k, v in split.inputs.items()}))
            for i in range(0, len(order), batch_size)]


def curvature_grads(split: Any, signature: Any, batch_size: int, seed: int) -> Any:
    """``output_curvature`` on a few seeded training batches (importance: hessian; no labels needed)."""
    from compressor.passes._torch_channels import output_curvature
    from compressor.passes._torch_fit import pinned_threads, training_threads

    curvature = output_curvature(training_batches(split, signature, batch_size, TAYLOR_BATCHES, seed), seed)

    def accumulate(module: Any) -> None:
        with pinned_threads(training_threads()):
            curvature(module)

    return accumulate


def _between(module: Any, config: StructuredPruningConfig, ctx: PassContext, signature: Any,
             history: list[list[float]], refits: list[dict[str, Any]]) -> Any:
    """What runs after each pruning step: the least-squares refit (reconstruct), then fine-tuning."""
    import copy

    from compressor.passes._torch_refit import reconstruct
    from compressor.passes._torch_fit import fit, pinned_threads, training_threads

    dense = copy.deepcopy(module).eval() if config.reconstruct else None

    def between(step: int) -> None:
        if dense is not None:
            split = ctx.data.split("training", needed_by="prune.structured reconstruct")
            batches = training_batches(split, signature, config.batch_size, RECONSTRUCT_BATCHES, ctx.seed + step)
            module.eval()
            with pinned_threads(training_threads()):
                done = reconstruct(module, dense, batches)
            ctx.say(f"step {step}: refitted {len(done)} layers by least squares")
            refits.extend({"step": step, **r} for r in done)
        if not config.finetune_epochs:
            return
        ctx.say(f"fine-tuning after pruning step {step}/{config.steps}")
        split = ctx.data.split("training", needed_by="prune.structured fine-tuning")
        history.append(fit(module, split, signature, epochs=config.finetune_epochs, lr=config.lr,
                           batch_size=config.batch_size, seed=ctx.seed + step, say=ctx.say,
                           workers=config.workers))

    return between


def save_pruned(module: Any, artifact: Artifact, widths: dict[str, list[int]], save_as: str,
                out_dir: Path) -> tuple[Path, str, dict[str, Any], str | None]:
    """Save as the factory with new widths when it rebuilds the pruned shapes exactly, else as a .pt2.

    Returns (path, format saved as, artifact meta, why the factory was not used or None).
    """
    from compressor.frameworks._torch import MODEL_JSON, save_exported, save_module

    desc = json.loads((Path(artifact.path) / MODEL_JSON).read_text())
    factory, kwargs = desc["factory"], desc.get("kwargs", {})
    why = None
    if save_as in ("auto", "factory"):
        new_kwargs, why = _rebuildable(module, factory, kwargs, widths)
        if new_kwargs is not None:
            return save_module(module, factory, new_kwargs, out_dir), "factory", {"kwargs": new_kwargs}, None
        if save_as == "factory":
            raise PassError(f"prune.structured save_as: factory: {why}; use save_as: auto or torch_export.")
    path = save_exported(module, artifact.signature, out_dir / "model.pt2")
    return path, "torch_export", {"source_factory": factory, "source_kwargs": kwargs}, why


def _rebuildable(module: Any, factory: str, kwargs: dict[str, Any],
                 widths: dict[str, list[int]]) -> tuple[dict[str, Any] | None, str | None]:
    """The factory kwargs that rebuild ``module``'s shapes (checked by a strict load), or None and why not."""
    import torch

    from compressor.frameworks._torch import build_module
    from compressor.passes.widths import declared_widths, pruned_kwargs

    new_kwargs = pruned_kwargs(factory, kwargs, {n: w[1] for n, w in widths.items()})
    if new_kwargs is None:
        return None, (f"factory '{factory}' declares no width kwarg for the pruned layers "
                      f"(WIDTH_KWARGS = {declared_widths(factory)})")
    try:
        torch.manual_seed(0)
        rebuilt = build_module(factory, new_kwargs)
        rebuilt.load_state_dict(module.state_dict(), strict=True)
    except Exception as exc:
        return None, f"factory '{factory}' with {new_kwargs} does not rebuild the pruned shapes ({first_line(exc, 160)})"
    return new_kwargs, None


def structured_prune(artifact: Artifact, config: StructuredPruningConfig, ctx: PassContext,
                     out_dir: Path) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    """Prune (in ``config.steps`` steps, fine-tuning between), save; return (model path, report, meta)."""
    from compressor.frameworks._torch import load_module, params_and_macs, sample_inputs
    from compressor.passes._torch_channels import prune_channels

    module = load_module(Path(artifact.path))
    sample = sample_inputs(artifact.signature, batch=2)
    before = params_and_macs(module, sample)
    grads = None
    if config.importance in ("taylor", "hessian"):
        split = ctx.data.split("training", needed_by=f"prune.structured importance: {config.importance}")
        maker = taylor_grads if config.importance == "taylor" else curvature_grads
        grads = maker(split, artifact.signature, config.batch_size, ctx.seed)
    history: list[list[float]] = []
    refits: list[dict[str, Any]] = []
    between = _between(module, config, ctx, artifact.signature, history, refits)
    pruner, groups = prune_channels(module, sample, settings_of(config), between=between, grads=grads)
    module.eval()
    after = params_and_macs(module, sample)
    widths = pruner.widths()
    path, saved_as, meta, why = save_pruned(module, artifact, widths, config.save_as, out_dir)
    report = {
        "widths": widths, "heads": pruner.heads(), "groups": groups, "layers_pruned": len(widths),
        "layers_skipped": pruner.skipped, "layers_skipped_count": len(pruner.skipped),
        "params_before": before["params"], "params_after": after["params"],
        "macs_before": before["macs"], "macs_after": after["macs"],
        "macs_ratio": round(after["macs"] / max(before["macs"], 1), 4),
        "params_ratio": round(after["params"] / max(before["params"], 1), 4),
        "saved_as": saved_as, "finetune_loss": history, "steps": config.steps,
    }
    if config.reconstruct:
        report["reconstruct"] = refits
    if saved_as == "factory":
        report["kwargs"] = meta.pop("kwargs")
    elif why:
        report["saved_as_reason"] = why
    return path, report, meta
