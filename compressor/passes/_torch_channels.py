"""Structured (channel) pruning of a torch module on Torch-Pruning's dependency graph (DepGraph).

Torch-Pruning (``torch-pruning`` on PyPI) traces the module once and groups every parameter slice
that must shrink together: a conv's filters with its BatchNorm, the depthwise conv and the next
layer's input channels; every layer feeding one residual add; the branches of a concatenation; the
blocks of input features a flatten gives a Linear; LayerNorm widths; the q/k/v/output projections of
an attention head. This module decides *what* to prune (which layers stay whole, the ratio, how
channels are ranked, how many heads go) and records what each group lost; Torch-Pruning applies it.

Used by ``prune.structured`` and by ``distill.kd`` (a pruned copy of the teacher as the student).
"""
from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from compressor.errors import PassError, first_line

IMPORTANCES = ("l1", "l2", "taylor", "hessian")
GRADIENT_IMPORTANCES = ("taylor", "hessian")  # the ones that read gradients (``grads`` in ChannelPruner.step)
SCOPES = ("layer", "global")
# attribute names of Hugging Face style attention modules: separate q/k/v Linear layers, a head count
QKV_NAMES = (("query", "key", "value"), ("q_proj", "k_proj", "v_proj"), ("q", "k", "v"))
HEAD_COUNT_NAMES = ("num_attention_heads", "num_heads", "n_heads")


@dataclass(frozen=True)
class ChannelSettings:
    """What to prune: ``ratio`` of each group's channels (or of all, ranked globally), ``heads`` of the heads."""

    ratio: float = 0.5
    importance: str = "l1"
    scope: str = "layer"
    round_to: int | None = None
    heads: float = 0.0
    steps: int = 1
    include: tuple[str, ...] = ("*",)
    ignore: tuple[str, ...] = ()
    who: str = "prune.structured"  # the pass named in error messages


def _layer_types() -> tuple[type, ...]:
    from torch import nn

    return (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def attention_heads(module: Any) -> dict[Any, tuple[Any, ...]]:
    """Attention modules with separate q/k/v Linear layers and a head count: module -> (q, k, v)."""
    from torch import nn

    found = {}
    for m in module.modules():
        count = next((getattr(m, a) for a in HEAD_COUNT_NAMES if isinstance(getattr(m, a, None), int)), None)
        if count is None or isinstance(m, nn.MultiheadAttention):
            continue
        for names in QKV_NAMES:
            layers = tuple(getattr(m, n, None) for n in names)
            if all(isinstance(layer, nn.Linear) for layer in layers):
                found[m] = layers
                break
    return found


def packed_attention_groups(module: Any) -> dict[Any, int]:
    """nn.MultiheadAttention modules -> their head count: Torch-Pruning then cuts the same positions from
    every head (its embedding width shrinks by a multiple of the heads), so head_dim stays whole."""
    from torch import nn

    return {m: m.num_heads for m in module.modules() if isinstance(m, nn.MultiheadAttention)}


def _head_count(attention: Any) -> int:
    return next(getattr(attention, a) for a in HEAD_COUNT_NAMES if isinstance(getattr(attention, a, None), int))


def output_layers(module: Any, sample: tuple[Any, ...]) -> set[Any]:
    """Layers whose output tensor is one of the model's outputs (their width is the output's)."""
    import torch

    produced: dict[int, Any] = {}
    hooks = [m.register_forward_hook(lambda m, _i, out: produced.__setitem__(id(out), m))
             for m in module.modules() if isinstance(m, _layer_types())]
    try:
        with torch.no_grad():
            out = module(*sample)
    finally:
        for h in hooks:
            h.remove()
    outs = out if isinstance(out, (tuple, list)) else [out]
    return {produced[id(o)] for o in outs if id(o) in produced}


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def _importance(settings: ChannelSettings) -> Any:
    import torch_pruning as tp

    if settings.importance == "taylor":
        return tp.importance.GroupTaylorImportance()
    if settings.importance == "hessian":  # reads the curvature output_curvature() leaves in .grad
        return tp.importance.GroupHessianImportance()
    return tp.importance.GroupMagnitudeImportance(p=1 if settings.importance == "l1" else 2)


def _trace(module: Any, sample: tuple[Any, ...], settings: ChannelSettings) -> Any:
    import torch_pruning as tp

    try:
        return tp.DependencyGraph().build_dependency(module, example_inputs=sample, verbose=False)
    except Exception as exc:
        raise PassError(f"{settings.who} cannot trace the model's channel dependencies ({first_line(exc, 200)}); "
                        f"use prune.magnitude or prune.nm, or make forward() run on the sample input.") from None


def _out_pruned(group: Any, names: dict[Any, str]) -> list[str]:
    """The named layers whose output channels a group removes (root first)."""
    seen = []
    for dep, _ in group:
        name = names.get(dep.target.module)
        if name is not None and dep.handler.__name__ == "prune_out_channels" and name not in seen:
            seen.append(name)
    return seen


def _reaches_output(group: Any) -> bool:
    import torch_pruning as tp

    return any(dep.target.type == tp.ops.OPTYPE.OUTPUT for dep, _ in group)


def _selection(module: Any, sample: tuple[Any, ...], settings: ChannelSettings) -> tuple[list[Any], dict[str, str]]:
    """Layers to keep whole (ignored by Torch-Pruning) and why, from include/ignore and the model's outputs."""
    names = {m: n for n, m in module.named_modules()}
    layers = {n: m for n, m in module.named_modules() if isinstance(m, _layer_types())}
    keep, why = [], {}
    outputs = output_layers(module, sample)
    for name, layer in layers.items():
        reason = ("its outputs are the model's outputs" if layer in outputs else
                  "matched by ignore" if _matches(name, settings.ignore) else
                  None if _matches(name, settings.include) else "not matched by include")
        if reason:
            keep.append(layer)
            why[name] = reason
    graph = _trace(module, sample, settings)
    for group in graph.get_all_groups(ignored_layers=keep, root_module_types=_layer_types()):
        if _reaches_output(group):  # e.g. the hidden width of an encoder whose pooled output is the result
            for name in _out_pruned(group, names):
                if name in layers and name not in why:
                    why[name] = "its channels reach the model's outputs"
                    keep.append(layers[name])
    return keep, why


def _check_settings(module: Any, settings: ChannelSettings, attention: dict[Any, tuple[Any, ...]]) -> None:
    layer_names = [n for n, m in module.named_modules() if isinstance(m, _layer_types())]
    for key, patterns in (("include", settings.include), ("ignore", settings.ignore)):
        for p in patterns:
            if not any(fnmatch.fnmatchcase(n, p) for n in layer_names):
                raise PassError(f"{settings.who} {key}: '{p}' matches no Conv or Linear layer of the model; its layers "
                                f"include {layer_names[:8]}; fix the pattern.")
    if settings.heads > 0 and not attention:
        raise PassError(f"{settings.who} heads: {settings.heads} needs attention modules with separate query/key/value "
                        f"Linear layers (Hugging Face style); this model has none (nn.MultiheadAttention packs them and "
                        f"is pruned along its embedding width instead); set heads: 0.")


class ChannelPruner:
    """One model's pruning plan on Torch-Pruning; ``step()`` removes the next share of channels."""

    def __init__(self, module: Any, sample: tuple[Any, ...], settings: ChannelSettings) -> None:
        import torch_pruning as tp

        self.module, self.sample, self.settings = module, sample, settings
        self.attention = attention_heads(module)
        _check_settings(module, settings, self.attention)
        keep, self.skipped = _selection(module, sample, settings)
        num_heads = {layer: _head_count(a) for a, qkv in self.attention.items() for layer in qkv}
        self.names = {m: n for n, m in module.named_modules()}
        self.start_widths = self._widths()
        try:
            self.pruner = tp.pruner.MetaPruner(
                module, sample, importance=_importance(settings), global_pruning=settings.scope == "global",
                pruning_ratio=settings.ratio, iterative_steps=settings.steps, ignored_layers=keep,
                round_to=settings.round_to, num_heads=num_heads, prune_num_heads=settings.heads > 0,
                out_channel_groups=packed_attention_groups(module),
                prune_head_dims=False, head_pruning_ratio=settings.heads, root_module_types=list(_layer_types()))
        except Exception as exc:
            raise PassError(f"{settings.who} cannot plan the pruning ({first_line(exc, 200)}); ignore the layer it names "
                            f"(ignore: [...]) or narrow include.") from None
        self.groups = [g for g in self.pruner.DG.get_all_groups(ignored_layers=keep, root_module_types=_layer_types())]
        if not self.groups:
            raise PassError(f"{settings.who} found no channel group it may prune (kept whole: {self.skipped}); "
                            f"widen include or narrow ignore.")

    def _widths(self) -> dict[str, int]:
        out = {}
        for name, m in self.module.named_modules():
            if isinstance(m, _layer_types()):
                out[name] = int(m.weight.shape[0])
        return out

    def step(self, grads: Callable[[Any], None] | None = None) -> list[dict[str, Any]]:
        """Prune the next step's share; return one record per group that lost channels.

        ``grads(module)`` accumulates gradients first (Taylor importance reads them).
        """
        from compressor.frameworks._torch import params_and_macs

        if self.settings.importance in GRADIENT_IMPORTANCES:
            if grads is None:
                raise PassError(f"{self.settings.who} importance: {self.settings.importance} needs gradients from "
                                f"training data.")
            self.module.zero_grad()
            grads(self.module)
        records = []
        for group in self.pruner.step(interactive=True):
            layers = _out_pruned(group, self.names)
            before_w = {n: self._width(n) for n in layers}
            cost = params_and_macs(self.module, self.sample)
            group.prune()
            after = self._cost_after(layers)
            records.append({"layers": layers, "channels": [before_w[layers[0]], self._width(layers[0])] if layers else None,
                            "params": [cost["params"], after["params"]], "macs": [cost["macs"], after["macs"]]})
        self._fix_attention()
        self.module.zero_grad(set_to_none=True)
        return records

    def _cost_after(self, layers: list[str]) -> dict[str, int]:
        """Params and MACs once a group is pruned; the model must still run on its sample."""
        from compressor.frameworks._torch import params_and_macs

        try:
            return params_and_macs(self.module, self.sample)
        except Exception as exc:
            shown = ", ".join(f"'{n}'" for n in layers)
            raise PassError(f"{self.settings.who}: Torch-Pruning removed the channels of {shown} but the model no longer "
                            f"runs ({first_line(exc, 160)}); keep them whole with ignore: [{shown}].") from None

    def _width(self, name: str) -> int | None:
        m = dict(self.module.named_modules())[name]
        weight = getattr(m, "weight", None)
        if weight is not None:
            return int(weight.shape[0])
        return getattr(m, "embed_dim", None)  # nn.MultiheadAttention keeps its projections packed

    def _fix_attention(self) -> None:
        """Attention modules record their head count and total width: set them to what is left."""
        for attention, (q, _k, _v) in self.attention.items():
            head_size = getattr(attention, "attention_head_size", None) or getattr(attention, "head_dim", None)
            if not isinstance(head_size, int) or head_size <= 0:
                continue
            heads = q.out_features // head_size
            for attr in HEAD_COUNT_NAMES:
                if isinstance(getattr(attention, attr, None), int):
                    setattr(attention, attr, heads)
            if isinstance(getattr(attention, "all_head_size", None), int):
                attention.all_head_size = heads * head_size

    def widths(self) -> dict[str, list[int]]:
        """Output width before -> now of every layer that lost channels."""
        now = self._widths()
        return {n: [w, now[n]] for n, w in self.start_widths.items() if now.get(n, w) != w}

    def heads(self) -> dict[str, list[int]]:
        """Head count before -> now of every attention module that lost heads."""
        out = {}
        for attention, (q, _k, _v) in self.attention.items():
            before = self.pruner.init_num_heads.get(q)
            now = _head_count(attention)
            if before is not None and before != now:
                out[self.names[attention]] = [int(before), int(now)]
        return out


def output_curvature(batches: list[tuple[Any, ...]], seed: int = 0) -> Callable[[Any], None]:
    """A ``grads`` function for ``importance: hessian``: each parameter's ``.grad`` becomes the mean over
    ``batches`` of its squared gradient of ``sum(outputs * noise)``, with fresh standard normal noise.

    The squared gradient of a random projection of the outputs estimates, without labels, the diagonal of
    the Gauss-Newton matrix J^T J; Torch-Pruning's GroupHessianImportance scores a channel by
    sum(w^2 * that) (Optimal Brain Damage): how far removing it moves the outputs. Embedding models,
    whose outputs have no labels to take a cross entropy against, rank their channels this way.
    """
    def accumulate(module: Any) -> None:
        import torch

        gen = torch.Generator().manual_seed(seed)
        sums: dict[Any, Any] = {}
        module.eval()
        for inputs in batches:
            module.zero_grad()
            out = module(*inputs)
            (out * torch.randn(out.shape, generator=gen, dtype=out.dtype)).sum().backward()
            for p in module.parameters():
                if p.grad is not None:
                    sums[p] = sums.get(p, 0) + p.grad.detach() ** 2
        for p in module.parameters():
            p.grad = sums[p] / len(batches) if p in sums else None

    return accumulate


def prune_channels(module: Any, sample: tuple[Any, ...], settings: ChannelSettings,
                   between: Callable[[int], None] | None = None,
                   grads: Callable[[Any], None] | None = None) -> tuple[ChannelPruner, list[dict[str, Any]]]:
    """Prune ``module`` in place over ``settings.steps`` steps; ``between(step)`` runs after each (fine-tuning).

    Returns the pruner (widths, heads, skipped layers) and the per-group records of every step.
    """
    pruner = ChannelPruner(module, sample, settings)
    records = []
    for i in range(settings.steps):
        for record in pruner.step(grads):
            records.append({"step": i + 1, **record})
        if between is not None:
            between(i + 1)
    return pruner, records
