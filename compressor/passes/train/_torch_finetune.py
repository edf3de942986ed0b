"""The torch side of train.finetune: head replacement, freezing, and the kwargs that rebuild it."""
from __future__ import annotations

import fnmatch
import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compressor.artifact import Artifact, Signature, TensorSpec
from compressor.errors import ModelLoadError, PassError

if TYPE_CHECKING:
    from compressor.passes.base import PassContext
    from compressor.passes.train.finetune import FineTuneConfig


def replace_head(module: Any, head: Any) -> Any:
    """Swap ``head.module`` for a fresh layer with ``head.num_classes`` outputs; return the new layer."""
    from torch import nn

    parent_name, _, child = head.module.rpartition(".")
    modules = dict(module.named_modules())
    old = modules.get(head.module)
    if old is None:
        raise PassError(f"train.finetune head.module '{head.module}' is not a layer of the model; layers with "
                        f"weights: {[n for n, m in modules.items() if hasattr(m, 'weight')][-8:]}.")
    if isinstance(old, nn.Linear):
        new = nn.Linear(old.in_features, head.num_classes, bias=old.bias is not None)
    elif isinstance(old, nn.Conv2d) and old.kernel_size == (1, 1) and old.groups == 1:
        new = nn.Conv2d(old.in_channels, head.num_classes, 1, bias=old.bias is not None)
    else:
        raise PassError(f"train.finetune head.module '{head.module}' is a {type(old).__name__}; it replaces a "
                        f"Linear or 1x1 Conv2d head. Point head.module at the classifier layer.")
    setattr(modules[parent_name] if parent_name else module, child, new)
    return new


def head_name(module: Any, config: FineTuneConfig) -> str:
    """The head: ``head.module``, else the last layer that owns a weight."""
    if config.head is not None:
        return config.head.module
    names = [n for n, m in module.named_modules() if n and getattr(m, "weight", None) is not None]
    if not names:
        raise PassError("train.finetune found no layer with weights to train.")
    return names[-1]


def freeze(module: Any, config: FineTuneConfig) -> tuple[list[str], list[Any]]:
    """Freeze parameters by config; return the frozen names and the fully frozen BatchNorm layers."""
    from torch import nn

    head = head_name(module, config)
    if config.freeze == "backbone":
        frozen = [n for n, _ in module.named_parameters() if not (n == head or n.startswith(head + "."))]
    else:
        frozen = []
        for pattern in config.freeze:
            hits = [n for n, _ in module.named_parameters() if fnmatch.fnmatchcase(n, pattern)]
            if not hits:
                raise PassError(f"train.finetune freeze pattern '{pattern}' matches no parameter; parameter names "
                                f"look like {[n for n, _ in module.named_parameters()][:4]}.")
            frozen += hits
    params = dict(module.named_parameters())
    for n in frozen:
        params[n].requires_grad_(False)
    if not any(p.requires_grad for p in module.parameters()):
        raise PassError("train.finetune would freeze every parameter; narrow 'freeze'.")
    bns = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
           and not any(p.requires_grad for p in m.parameters())]
    return sorted(set(frozen)), bns


def prepare(artifact: Artifact, config: FineTuneConfig, seed: int) -> tuple[Any, str, dict[str, Any]]:
    """Load, replace the head (seeded), and check the factory rebuilds the new shape; return module, factory, kwargs."""
    import torch

    from compressor.frameworks._torch import build_module, load_module

    module = load_module(Path(artifact.path))
    desc = json.loads((Path(artifact.path) / "model.json").read_text())
    factory, kwargs = desc["factory"], dict(desc.get("kwargs", {}))
    if config.head is not None:
        torch.manual_seed(seed)
        replace_head(module, config.head)
        kwargs[config.head.kwarg] = config.head.num_classes
        try:
            rebuilt = build_module(factory, kwargs)
        except ModelLoadError:  # the factory cannot rebuild the new head's width from a kwarg
            raise PassError(f"train.finetune: factory '{factory}' does not take '{config.head.kwarg}'; "
                            f"give it a keyword argument that sets the head's width, or set head.kwarg.") from None
        want = {k: tuple(v.shape) for k, v in module.state_dict().items()}
        got = {k: tuple(v.shape) for k, v in rebuilt.state_dict().items()}
        if want != got:
            diff = next(k for k in sorted(set(want) | set(got)) if want.get(k) != got.get(k))
            raise PassError(f"train.finetune: factory '{factory}' with {config.head.kwarg}={config.head.num_classes} "
                            f"does not rebuild the new head ('{diff}': {got.get(diff)} vs {want.get(diff)}); "
                            f"make that kwarg set the head's width.")
    return module, factory, kwargs


def finetune(artifact: Artifact, config: FineTuneConfig, ctx: PassContext, out_dir: Path) -> tuple[Signature, dict[str, Any]]:
    """Replace the head, freeze, train, save; return the new signature and the report."""
    import torch

    from compressor.frameworks._torch import load_module, sample_inputs, save_module
    from compressor.passes._torch_fit import fit

    module, factory, kwargs = prepare(artifact, config, ctx.seed)
    frozen, bns = freeze(module, config)
    split = ctx.data.split("training", needed_by="train.finetune")
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    ctx.say(f"training {trainable} of {sum(p.numel() for p in module.parameters())} parameters")
    history = fit(module, split, artifact.signature, epochs=config.epochs, lr=config.lr,
                  batch_size=config.batch_size, seed=ctx.seed, say=ctx.say, keep_eval=bns, workers=config.workers)
    for p in module.parameters():
        p.requires_grad_(True)
    save_module(module.eval(), factory, kwargs, out_dir)
    load_module(out_dir)  # the recorded kwargs rebuild it exactly
    with torch.no_grad():
        out = module(*sample_inputs(artifact.signature, batch=2))
    outputs = (TensorSpec(artifact.signature.outputs[0].name if artifact.signature.outputs else "output",
                          ("batch", *out.shape[1:]), "float32"),)
    report = {"trainable_params": trainable, "frozen_params": len(frozen), "frozen_batchnorm": len(bns),
              "head": head_name(module, config), "kwargs": kwargs, "loss": history}
    return replace(artifact.signature, outputs=outputs), report
