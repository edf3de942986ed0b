"""The one PyTorch training loop, shared by fine-tuning, pruning and distillation."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from compressor.data import Split, feeds_for


def to_tensors(signature: Any, batch: dict[str, np.ndarray]) -> list[Any]:
    import torch

    feeds = feeds_for(signature, batch)
    return [torch.from_numpy(feeds[n]) for n in signature.input_names]


def fit(
    module: Any,
    split: Split,
    signature: Any,
    *,
    epochs: int,
    lr: float = 1e-3,
    batch_size: int = 64,
    seed: int = 0,
    loss_fn: Callable[[Any, Any, list[Any]], Any] | None = None,
    after_step: Callable[[int, int], None] | None = None,
    say: Callable[[str], None] | None = None,
    parameters: Any = None,
    keep_eval: Any = (),
) -> list[float]:
    """Train ``module`` in place with Adam; return the mean loss of each epoch.

    ``loss_fn(outputs, labels, inputs)`` defaults to cross entropy on the split's labels.
    ``after_step(step, total_steps)`` runs after every optimizer step (pruning re-applies masks).
    ``keep_eval`` modules stay in eval mode while the rest trains (frozen BatchNorm keeps its statistics).
    """
    import torch
    import torch.nn.functional as F

    from compressor.errors import DataError

    if split.labels is None and loss_fn is None:
        raise DataError("training needs labels, but the training split has none; add 'y' to the data.")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    params = [p for p in (parameters if parameters is not None else module.parameters()) if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=lr)
    loss_fn = loss_fn or (lambda out, y, _x: F.cross_entropy(out, y))
    steps_per_epoch = (len(split) + batch_size - 1) // batch_size
    total, step, history = steps_per_epoch * epochs, 0, []
    module.train()
    for frozen in keep_eval:
        frozen.eval()
    for epoch in range(epochs):
        order = rng.permutation(len(split))
        losses = []
        for start in range(0, len(split), batch_size):
            idx = order[start:start + batch_size]
            inputs = to_tensors(signature, {k: v[idx] for k, v in split.inputs.items()})
            labels = None if split.labels is None else torch.from_numpy(split.labels[idx])
            optimizer.zero_grad()
            loss = loss_fn(module(*inputs), labels, inputs)
            loss.backward()
            optimizer.step()
            step += 1
            if after_step is not None:
                after_step(step, total)
            losses.append(float(loss.detach()))
        history.append(float(np.mean(losses)))
        if say is not None:
            say(f"epoch {epoch + 1}/{epochs} loss {history[-1]:.4f}")
    module.eval()
    return history
