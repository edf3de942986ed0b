"""The PyTorch training loop itself, for one process or one data-parallel worker (``_torch_fit.fit``
calls it here; ``_torch_ddp`` calls it in each Ray Train worker)."""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from compressor.data import Split, feeds_for


@contextmanager
def pinned_threads(threads: int) -> Iterator[None]:
    """torch's intra-op thread count set to ``threads`` for the block, the previous count restored after."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def to_tensors(signature: Any, batch: dict[str, np.ndarray]) -> list[Any]:
    import torch

    feeds = feeds_for(signature, batch)
    return [torch.from_numpy(feeds[n]) for n in signature.input_names]


WARMUP_SHARE = 0.05  # share of the steps the cosine schedule warms up over


def lr_at(step: int, total: int, lr: float, schedule: str) -> float:
    """The learning rate of optimizer step ``step`` (0-based) of ``total``: constant, or warm-up then cosine."""
    if schedule == "constant":
        return lr
    warm = max(1, int(total * WARMUP_SHARE))
    if step < warm:
        return lr * (step + 1) / warm
    return 0.5 * lr * (1.0 + math.cos(math.pi * (step - warm) / max(1, total - warm)))


def train_epochs(wrapped: Any, module: Any, split: Split, signature: Any, *, epochs: int, lr: float,
                 batch_size: int, seed: int, loss_fn: Callable[[Any, Any, list[Any]], Any] | None,
                 after_step: Callable[[int, int], None] | None, parameters: Any, keep_eval: Any,
                 say: Callable[[str], None] | None = None, shard: tuple[int, int] = (0, 1),
                 reduce: Callable[[float], float] | None = None,
                 plan: Callable[[Any], list[np.ndarray]] | None = None, schedule: str = "constant") -> list[float]:
    """The loop: ``wrapped`` (``module``, or its DistributedDataParallel) trained on this worker's
    ``shard`` = (rank, world) of every batch; each epoch's loss is ``reduce``d over the workers.

    ``plan(rng)`` gives an epoch's batches as arrays of sample indices (default: a seeded shuffle cut
    into ``batch_size`` pieces); e.g. sequences of similar length batched together.
    """
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    params = [p for p in (parameters if parameters is not None else module.parameters()) if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=lr)
    loss_fn = loss_fn or (lambda out, y, _x: F.cross_entropy(out, y))
    plan = plan or (lambda gen: np.array_split(gen.permutation(len(split)), range(batch_size, len(split), batch_size)))
    steps_per_epoch = len(plan(np.random.default_rng(seed)))
    total, step, history = steps_per_epoch * epochs, 0, []
    rank, world = shard
    wrapped.train()
    for frozen in keep_eval:
        frozen.eval()
    for epoch in range(epochs):
        losses = []
        for batch in plan(rng):
            idx = batch[rank::world] if world > 1 else batch
            if len(idx) == 0:  # a last batch smaller than the workers: every worker must still take a step
                idx = batch[:1]
            inputs = to_tensors(signature, {k: v[idx] for k, v in split.inputs.items()})
            labels = None if split.labels is None else torch.from_numpy(split.labels[idx])
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step, total, lr, schedule)
            optimizer.zero_grad()
            loss = loss_fn(wrapped(*inputs), labels, inputs)
            loss.backward()
            optimizer.step()
            step += 1
            if after_step is not None:
                after_step(step, total)
            losses.append(float(loss.detach()))
        mean = float(np.mean(losses))
        history.append(reduce(mean) if reduce is not None else mean)
        if say is not None:
            say(f"epoch {epoch + 1}/{epochs} loss {history[-1]:.4f}")
    module.eval()
    return history
