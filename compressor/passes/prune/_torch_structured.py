"""Structured pruning of a torch module: find what each layer's output channels feed, then shrink them all.

The dependency walk runs on a ``torch.fx`` trace with shapes propagated from a sample batch. From each
Conv2d (groups=1) or Linear layer it follows the output through channel-preserving ops (activations,
pooling, dropout), BatchNorm and depthwise convolutions (which shrink along with it), and flattening
into a Linear (each channel owns a block of input features), to the layers that consume it (their input
channels shrink). A path into anything else (a residual add, a concatenation, a reshape that mixes
channels, the model output) cannot be followed: that layer is refused, by name.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from compressor.errors import PassError, first_line

if TYPE_CHECKING:
    from compressor.artifact import Artifact
    from compressor.passes.base import PassContext
    from compressor.passes.prune.structured import StructuredPruningConfig


@dataclass
class Dependents:
    """What must shrink with one pruned layer's output channels."""

    channel_layers: list[str] = field(default_factory=list)  # BatchNorm / depthwise conv: sliced on dim 0
    consumers: dict[str, int] = field(default_factory=dict)  # layer -> features per channel (1, or H*W after flatten)


class CannotFollow(Exception):
    """The walk reached an op it cannot carry a channel selection through."""


def _passthrough() -> tuple[tuple[type, ...], set[Any], set[str]]:
    import torch
    import torch.nn.functional as F
    from torch import nn

    modules = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Hardswish,
               nn.Hardsigmoid, nn.ELU, nn.Dropout, nn.Dropout2d, nn.Identity, nn.MaxPool1d, nn.MaxPool2d,
               nn.AvgPool1d, nn.AvgPool2d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
    functions = {torch.relu, F.relu, F.relu6, F.gelu, F.silu, F.elu, F.leaky_relu, F.hardswish, torch.sigmoid,
                 torch.tanh, F.dropout, F.max_pool1d, F.max_pool2d, F.avg_pool1d, F.avg_pool2d,
                 F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_max_pool2d}
    methods = {"relu", "relu_", "sigmoid", "tanh", "contiguous"}
    return modules, functions, methods


def _shape(node: Any) -> tuple[int, ...] | None:
    meta = node.meta.get("tensor_meta")
    return tuple(meta.shape) if meta is not None and hasattr(meta, "shape") else None


def _describe(node: Any) -> str:
    target = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", str(node.target))
    if node.op == "output":
        return "the model output"
    if target in ("add", "iadd") or node.target in (operator.add, operator.iadd):
        return f"'{node.name}' (an add: a residual connection ties these channels to another layer's)"
    if "cat" in str(target):
        return f"'{node.name}' (a concatenation)"
    return f"'{node.name}' ({node.op} {target})"


class ChannelGraph:
    """A traced module with shapes, answering: what depends on layer L's output channels?"""

    def __init__(self, module: Any, sample: Any) -> None:
        import torch.fx
        from torch.fx.passes.shape_prop import ShapeProp

        try:
            self.gm = torch.fx.symbolic_trace(module)
        except Exception as exc:
            detail = first_line(exc, 200)
            raise PassError(
                f"prune.structured cannot trace the model with torch.fx ({detail}); data-dependent control flow "
                f"is not traceable. Use prune.magnitude or prune.nm, or make forward() traceable."
            ) from None
        ShapeProp(self.gm).propagate(*(sample if isinstance(sample, tuple) else (sample,)))
        self.modules = dict(self.gm.named_modules())
        self.nodes = {n.target: n for n in self.gm.graph.nodes if n.op == "call_module"}
        self.passthrough = _passthrough()

    def dependents(self, layer: str) -> Dependents:
        """Everything that shrinks with ``layer``'s output channels; raise CannotFollow with the reason."""
        node = self.nodes.get(layer)
        if node is None:
            raise CannotFollow("it is not called in forward() (or is called through a container fx cannot see)")
        out = _shape(node)
        if out is None or len(out) < 2:
            raise CannotFollow("its output shape is unknown")
        if len(out) > 2 and isinstance(self.modules[layer], _linear_type()):
            raise CannotFollow(f"it is a Linear applied to a {len(out)}-d tensor (only (batch, features) is followed)")
        deps = Dependents()
        self._follow(node, None, deps, set())
        return deps

    def _follow(self, node: Any, per_channel: int | None, deps: Dependents, seen: set[str]) -> None:
        for user in node.users:
            if user.name in seen:
                continue
            seen.add(user.name)
            self._step(node, user, per_channel, deps, seen)

    def _step(self, src: Any, user: Any, per_channel: int | None, deps: Dependents, seen: set[str]) -> None:
        from torch import nn

        modules, functions, methods = self.passthrough
        if _reads_shape_only(user):
            return None
        if user.op == "call_module":
            m = self.modules[user.target]
            if isinstance(m, modules):
                return self._follow(user, per_channel, deps, seen)
            if isinstance(m, nn.Flatten) and m.start_dim == 1:
                return self._follow(user, self._flattened(src, user, per_channel), deps, seen)
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) and per_channel is None:
                deps.channel_layers.append(user.target)
                return self._follow(user, None, deps, seen)
            if isinstance(m, nn.Conv2d) and per_channel is None and _first_arg(user) is src:
                if m.groups == 1:
                    deps.consumers[user.target] = 1
                    return None
                if m.groups == m.in_channels == m.out_channels:  # depthwise: one filter per channel
                    deps.channel_layers.append(user.target)
                    return self._follow(user, None, deps, seen)
            if isinstance(m, nn.Linear) and _first_arg(user) is src and len(_shape(src) or ()) == 2:
                deps.consumers[user.target] = per_channel or 1
                return None
        elif user.op == "call_function" and user.target in functions and _first_arg(user) is src:
            return self._follow(user, per_channel, deps, seen)
        elif user.op == "call_method" and user.target in methods:
            return self._follow(user, per_channel, deps, seen)
        elif self._is_flatten(user) and _first_arg(user) is src:
            return self._follow(user, self._flattened(src, user, per_channel), deps, seen)
        raise CannotFollow(f"its output reaches {_describe(user)}")

    def _is_flatten(self, node: Any) -> bool:
        import torch

        if node.op == "call_function" and node.target is torch.flatten:
            return True
        if node.op == "call_method" and node.target in ("flatten", "view", "reshape"):
            return True
        return False

    def _flattened(self, src: Any, node: Any, per_channel: int | None) -> int | None:
        """Features per channel after ``node`` when it flattens (batch, C, ...) to (batch, C*...)."""
        before, after = _shape(src), _shape(node)
        if before is None or after is None or before == after:
            return per_channel
        spatial = 1
        for d in before[2:]:
            spatial *= d
        if len(after) == 2 and after[0] == before[0] and after[1] == before[1] * spatial and per_channel is None:
            return spatial
        raise CannotFollow(f"its output reaches {_describe(node)}, which reshapes {list(before)} to {list(after)}")


def _reads_shape_only(node: Any) -> bool:
    """``x.size(0)``, ``x.dim()``, ``x.shape``: uses of a tensor that carry no channel data."""
    if node.op == "call_method" and node.target in ("size", "dim"):
        return True
    return node.op == "call_function" and node.target is getattr and node.args[1:2] in (("shape",), ("ndim",))


def _linear_type() -> type:
    from torch import nn

    return nn.Linear


def _first_arg(node: Any) -> Any:
    return node.args[0] if node.args else node.kwargs.get("input")


def structured_candidates(module: Any) -> dict[str, Any]:
    """Layers whose output channels can be removed: Conv2d with groups=1, and Linear."""
    from torch import nn

    return {n: m for n, m in module.named_modules()
            if (isinstance(m, nn.Conv2d) and m.groups == 1) or isinstance(m, nn.Linear)}


def plan(module: Any, sample: Any, layers: dict[str, Any], skipped: dict[str, str], explicit: set[str],
         ) -> dict[str, Dependents]:
    """Dependents of every selected layer. A layer the walk cannot follow is an error.

    Layers that produce the model's outputs are skipped (their width is the output's); any other
    selected layer that cannot be followed is refused by name.
    """
    graph = ChannelGraph(module, sample)
    result = {}
    for name in layers:
        try:
            result[name] = graph.dependents(name)
        except CannotFollow as exc:
            if "the model output" in str(exc) and name not in explicit:
                skipped[name] = "its outputs are the model's outputs"
                continue
            raise PassError(
                f"prune.structured cannot prune layer '{name}': {exc}. Exclude it (exclude: ['{name}']) "
                f"or narrow include."
            ) from None
    if not result:
        raise PassError(
            f"prune.structured found no layer it can prune (skipped: {skipped}); widen include or narrow exclude."
        )
    return result


def rank_filters(weight: Any, keep: int, norm: str) -> Any:
    """Indices (sorted) of the ``keep`` output channels with the largest L1 or L2 norm."""
    import torch

    flat = weight.detach().flatten(1)
    score = flat.abs().sum(1) if norm == "l1" else flat.pow(2).sum(1).sqrt()
    return torch.sort(torch.topk(score, keep).indices).values


def _slice_param(owner: Any, name: str, index: Any, dim: int) -> None:
    import torch
    from torch import nn

    tensor = getattr(owner, name, None)
    if tensor is None:
        return
    new = torch.index_select(tensor.detach(), dim, index).clone()
    if isinstance(tensor, nn.Parameter):
        setattr(owner, name, nn.Parameter(new, requires_grad=tensor.requires_grad))
    else:
        owner.register_buffer(name, new)


def shrink(module: Any, deps: dict[str, Dependents], sparsity: float, norm: str) -> dict[str, list[int]]:
    """Remove the lowest-norm output channels of each planned layer and the matching slices downstream.

    Returns the new widths as ``{layer: [before, after]}``. Ranking uses the weights as they were
    before any slicing.
    """
    import torch
    from torch import nn

    mods = dict(module.named_modules())
    keep = {}
    for name in deps:
        w = mods[name].weight
        n_out = w.shape[0]
        keep[name] = rank_filters(w, max(1, int(round(n_out * (1 - sparsity)))), norm)
    widths = {}
    for name, d in deps.items():
        idx = keep[name]
        layer = mods[name]
        widths[name] = [int(layer.weight.shape[0]), int(len(idx))]
        _slice_param(layer, "weight", idx, 0)
        _slice_param(layer, "bias", idx, 0)
        _set_out(layer, len(idx))
        for dep in d.channel_layers:
            m = mods[dep]
            for p in ("weight", "bias", "running_mean", "running_var"):
                _slice_param(m, p, idx, 0)
            if isinstance(m, nn.Conv2d):  # depthwise
                m.in_channels = m.out_channels = m.groups = len(idx)
            else:
                m.num_features = len(idx)
        for consumer, per_channel in d.consumers.items():
            m = mods[consumer]
            cols = (idx[:, None] * per_channel + torch.arange(per_channel)[None, :]).flatten()
            _slice_param(m, "weight", cols, 1)
            if isinstance(m, nn.Conv2d):
                m.in_channels = int(m.weight.shape[1])
            else:
                m.in_features = int(m.weight.shape[1])
    return widths


def _set_out(layer: Any, n: int) -> None:
    from torch import nn

    if isinstance(layer, nn.Conv2d):
        layer.out_channels = n
    else:
        layer.out_features = n


def structured_prune(artifact: Artifact, config: StructuredPruningConfig, ctx: PassContext, out_dir: Any) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """Plan, shrink, fine-tune and save; return (model path, report, artifact meta)."""
    import json
    from pathlib import Path

    from compressor.frameworks._torch import (
        MODEL_JSON,
        load_module,
        params_and_macs,
        sample_inputs,
        save_exported,
        save_module,
    )
    from compressor.passes._torch_fit import fit
    from compressor.passes.widths import pruned_kwargs

    module, deps, skipped = prepare(artifact, config)
    sample = sample_inputs(artifact.signature, batch=2)
    before = params_and_macs(module, sample)
    widths = shrink(module, deps, config.sparsity, config.norm)
    desc = json.loads((Path(artifact.path) / MODEL_JSON).read_text())
    new_kwargs = None
    if config.save_as == "factory":
        new_kwargs = pruned_kwargs(desc["factory"], desc.get("kwargs", {}), {n: w[1] for n, w in widths.items()})
    history = []
    if config.finetune_epochs:
        split = ctx.data.split("training", needed_by="prune.structured fine-tuning")
        history = fit(module, split, artifact.signature, epochs=config.finetune_epochs, lr=config.lr,
                      batch_size=config.batch_size, seed=ctx.seed, say=ctx.say, workers=config.workers)
    after = params_and_macs(module.eval(), sample)
    meta: dict[str, Any] = {"source_factory": desc["factory"], "source_kwargs": desc.get("kwargs", {})}
    if config.save_as == "factory":
        path = save_module(module, desc["factory"], new_kwargs, out_dir)
        load_module(path)  # the new kwargs must rebuild the new shapes exactly (strict load)
        meta = {}
    else:
        path = save_exported(module, artifact.signature, out_dir / "model.pt2")
    report = {
        "widths": widths, "layers_pruned": len(widths), "layers_skipped": skipped,
        "layers_skipped_count": len(skipped), "params_before": before["params"], "params_after": after["params"],
        "macs_before": before["macs"], "macs_after": after["macs"],
        "macs_ratio": round(after["macs"] / max(before["macs"], 1), 4),
        "params_ratio": round(after["params"] / max(before["params"], 1), 4),
        "saved_as": config.save_as, "finetune_loss": history,
    }
    if new_kwargs is not None:
        report["kwargs"] = new_kwargs
    return path, report, meta


def prepare(artifact: Artifact, config: StructuredPruningConfig) -> tuple[Any, dict[str, Dependents], dict[str, str]]:
    """Load the model and plan the pruning; every refusal happens here (``check`` calls it too)."""
    from pathlib import Path

    from compressor.frameworks._torch import load_module, sample_inputs
    from compressor.passes.prune._torch import select_prunable
    from compressor.passes.prune.magnitude import is_pattern

    module = load_module(Path(artifact.path))
    layers, skipped = select_prunable(module, config, "prune.structured", structured_candidates(module))
    explicit = {p for p in config.include if not is_pattern(p)}
    deps = plan(module, sample_inputs(artifact.signature, batch=2), layers, skipped, explicit)
    for name, d in deps.items():
        for dep in d.channel_layers:
            skipped[dep] = f"shrinks with '{name}' (channel-wise layer it feeds)"
    return module, deps, skipped
