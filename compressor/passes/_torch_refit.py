"""Least-squares refit of the layers whose inputs structured pruning narrowed (``reconstruct``).

After ``compressor.passes._torch_channels`` removes channels, a layer that reads a narrowed input but
keeps its output width (a Transformer block's attention and MLP output projections, a 1x1 projection
conv whose outputs were kept) can be refitted in closed form so that its outputs match the unpruned
model's: used by ``prune.structured`` (``reconstruct: true``) and ``distill.kd``'s pruned copy.
"""
from __future__ import annotations

from typing import Any

REFIT_ROWS = 65536  # rows (tokens, pixels) the least-squares refit of one layer reads at most


def _narrowed_consumers(student: Any, teacher: Any) -> list[str]:
    """Layers of ``student`` (Linear, or 1x1 Conv2d without groups) whose input width shrank while their
    output width stayed the teacher's: their output can be fitted to the teacher's by least squares."""
    from torch import nn

    twins = dict(teacher.named_modules())
    out = []
    for name, m in student.named_modules():
        t = twins.get(name)
        if isinstance(m, nn.Linear) and isinstance(t, nn.Linear):
            if m.in_features < t.in_features and m.out_features == t.out_features:
                out.append(name)
        elif isinstance(m, nn.Conv2d) and isinstance(t, nn.Conv2d) and m.kernel_size == (1, 1) and m.groups == 1 \
                and t.groups == 1 and m.stride == (1, 1) and m.in_channels < t.in_channels \
                and m.out_channels == t.out_channels:
            out.append(name)
    return out


def _rows(x: Any, mask: Any | None) -> Any:
    """(rows, channels) of a layer's input or output: channels last; masked positions (padding) left out."""
    if x.dim() == 4:  # a 1x1 conv: every pixel is a row
        return x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])
    if mask is not None and x.dim() == 3 and tuple(x.shape[:2]) == tuple(mask.shape):
        return x[mask.bool()]
    return x.reshape(-1, x.shape[-1])


def _token_mask(inputs: tuple[Any, ...]) -> Any | None:
    """The batch's 0/1 (batch, tokens) mask input, if it has one (an attention mask marks the padding)."""
    import torch

    for x in inputs:
        if isinstance(x, torch.Tensor) and x.dim() == 2 and not x.is_floating_point() and x.numel() \
                and bool(((x == 0) | (x == 1)).all()) and bool((x == 0).any()):
            return x
    return None


def _capture(module: Any, names: list[str], batches: list[tuple[Any, ...]], want: str) -> dict[str, Any]:
    """The input (``want='in'``) or output of each layer in ``names`` over all batches, as (rows, channels):
    at most ``REFIT_ROWS`` in all, the same seeded rows of each batch on every call (inputs and targets pair up)."""
    import torch

    modules = dict(module.named_modules())
    got: dict[str, list[Any]] = {n: [] for n in names}
    mask: list[Any] = [None]
    per_batch = max(1, REFIT_ROWS // max(1, len(batches)))

    def hook(name: str) -> Any:
        def keep(_m: Any, args: Any, kwargs: Any, out: Any) -> None:
            x = (args[0] if args else next(iter(kwargs.values()))) if want == "in" else out
            rows = _rows(x.detach().double(), mask[0])
            if len(rows) > per_batch:
                pick = torch.randperm(len(rows), generator=torch.Generator().manual_seed(len(got[name])))[:per_batch]
                rows = rows[pick.sort().values]
            got[name].append(rows)
        return keep

    handles = [modules[n].register_forward_hook(hook(n), with_kwargs=True) for n in names]
    try:
        with torch.no_grad():
            for inputs in batches:
                mask[0] = _token_mask(inputs)
                module(*inputs)
    finally:
        for h in handles:
            h.remove()
    return {n: torch.cat(v) for n, v in got.items()}


def reconstruct(student: Any, teacher: Any, batches: list[tuple[Any, ...]], ridge: float = 1e-3) -> list[dict[str, Any]]:
    """Refit the layers whose inputs pruning narrowed so that their outputs match the unpruned model's.

    For each such layer (a Linear, or a 1x1 conv, whose input channels shrank and whose output width is
    the teacher's: the MLP's output projection, an attention block's output projection, a projection
    conv), in the order the forward pass reaches them, the student's own inputs X on ``batches`` and the
    teacher's outputs Y of the same layer give the least-squares weights and bias (ridge-regularized,
    ``ridge`` x the mean diagonal of X^T X): min ||[X 1] W - Y||^2. Each fit sees the earlier layers'
    refitted outputs, so errors do not pile up layer after layer. Padding positions (zeros of a 0/1
    ``(batch, tokens)`` mask input) are left out. No gradient steps: a closed-form starting point for
    fine-tuning or distillation. Returns per layer its relative output error before and after.
    """
    import torch

    consumers = _narrowed_consumers(student, teacher)
    if not consumers:
        return []
    order: list[str] = []
    hooks = [dict(student.named_modules())[n].register_forward_hook(
        lambda _m, _i, _o, n=n: order.append(n) if n not in order else None) for n in consumers]
    try:
        with torch.no_grad():
            student(*batches[0])
    finally:
        for h in hooks:
            h.remove()
    targets = _capture(teacher, order, batches, "out")
    records = []
    for name in order:
        layer = dict(student.named_modules())[name]
        x, y = _capture(student, [name], batches, "in")[name], targets.pop(name)
        weight = layer.weight.detach().double().reshape(layer.weight.shape[0], -1)
        bias = layer.bias.detach().double() if layer.bias is not None else torch.zeros(weight.shape[0], dtype=x.dtype)
        before = float((x @ weight.T + bias - y).norm() / y.norm().clamp_min(1e-12))
        # a layer with a bias fits it as one more input column of ones; one without fits no offset
        cols = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], 1) if layer.bias is not None else x
        gram = cols.T @ cols
        gram += ridge * float(gram.diagonal()[:x.shape[1]].mean()) * torch.eye(len(gram), dtype=gram.dtype)
        solved = torch.linalg.solve(gram, cols.T @ y)  # (in [+ 1], out)
        new_w = solved[:x.shape[1]].T
        new_b = solved[-1] if layer.bias is not None else torch.zeros_like(bias)
        after = float((x @ new_w.T + new_b - y).norm() / y.norm().clamp_min(1e-12))
        if after < before:  # a fit that is no better than the pruned weights is not taken
            with torch.no_grad():
                layer.weight.copy_(new_w.reshape(layer.weight.shape).to(layer.weight.dtype))
                if layer.bias is not None:
                    layer.bias.copy_(new_b.to(layer.bias.dtype))
        records.append({"layer": name, "rows": int(len(x)), "error_before": round(before, 5),
                        "error_after": round(min(after, before), 5)})
    return records
