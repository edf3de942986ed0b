"""Parameters and multiply-accumulates of a torch module, counted on one sample with forward hooks."""
from __future__ import annotations

from typing import Any


def params_and_macs(module: Any, sample: Any) -> dict[str, int]:
    """Parameter count and MACs per sample of ``module`` (Conv and Linear layers; others are free).

    ``sample`` is a batch of inputs (a tensor or a tuple of tensors); MACs are divided by its batch size.
    """
    import torch
    from torch import nn

    macs = 0

    def conv_hook(layer: Any, _inputs: Any, out: Any) -> None:
        nonlocal macs
        kernel = 1
        for k in layer.kernel_size:
            kernel *= k
        macs += out.numel() * (layer.in_channels // layer.groups) * kernel

    def linear_hook(layer: Any, _inputs: Any, out: Any) -> None:
        nonlocal macs
        macs += out.numel() * layer.in_features

    handles = []
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    args = sample if isinstance(sample, tuple) else (sample,)
    try:
        with torch.no_grad():
            module(*args)
    finally:
        for h in handles:
            h.remove()
    batch = max(int(args[0].shape[0]), 1)
    return {"params": sum(p.numel() for p in module.parameters()), "macs": macs // batch}
