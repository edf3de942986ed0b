"""The one PyTorch training loop, shared by fine-tuning, pruning and distillation.

Training is deterministic with respect to what ran before it in the process: torch's result
depends on its intra-op thread count (reductions split differently), and other code changes that
count (a torch runtime opened with ``threads``), so ``fit`` pins it to ``training_threads()`` for
its duration and restores it after. That number enters the cache key of every pass that trains
(see ``compressor.run.step.pass_key``), so a cached result is reused only where training would
run the same way.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from compressor.data import Split, feeds_for


TRAINING_THREADS_MAX = 4  # torch's intra-op threads while training, at most; fewer on a smaller machine


def training_threads() -> int:
    """The intra-op thread count ``fit`` trains with: the usable cores, at most ``TRAINING_THREADS_MAX``."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count() or 1
    return max(1, min(TRAINING_THREADS_MAX, usable))


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
    workers: int = 1,
) -> list[float]:
    """Train ``module`` in place with Adam, on ``training_threads()`` threads; return the mean loss of each epoch.

    ``loss_fn(outputs, labels, inputs)`` defaults to cross entropy on the split's labels.
    ``after_step(step, total_steps)`` runs after every optimizer step (pruning re-applies masks).
    ``keep_eval`` modules stay in eval mode while the rest trains (frozen BatchNorm keeps its statistics).
    ``workers`` > 1 trains data-parallel through Ray Train (``_torch_ddp``), each global batch shared out.
    """
    from compressor.errors import DataError

    if split.labels is None and loss_fn is None:
        raise DataError("training needs labels, but the training split has none; add 'y' to the data.")
    settings = {"epochs": epochs, "lr": lr, "batch_size": batch_size, "seed": seed, "loss_fn": loss_fn,
                "after_step": after_step, "parameters": parameters, "keep_eval": keep_eval}
    if workers > 1:
        from compressor.passes._torch_ddp import fit_distributed

        return fit_distributed(module, split, signature, workers, training_threads(), settings, say)
    with pinned_threads(training_threads()):
        return train_epochs(module, module, split, signature, say=say, **settings)


def train_epochs(wrapped: Any, module: Any, split: Split, signature: Any, *, epochs: int, lr: float,
                 batch_size: int, seed: int, loss_fn: Callable[[Any, Any, list[Any]], Any] | None,
                 after_step: Callable[[int, int], None] | None, parameters: Any, keep_eval: Any,
                 say: Callable[[str], None] | None = None, shard: tuple[int, int] = (0, 1),
                 reduce: Callable[[float], float] | None = None) -> list[float]:
    """The loop: ``wrapped`` (``module``, or its DistributedDataParallel) trained on this worker's
    ``shard`` = (rank, world) of every batch; each epoch's loss is ``reduce``d over the workers."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    params = [p for p in (parameters if parameters is not None else module.parameters()) if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=lr)
    loss_fn = loss_fn or (lambda out, y, _x: F.cross_entropy(out, y))
    steps_per_epoch = (len(split) + batch_size - 1) // batch_size
    total, step, history = steps_per_epoch * epochs, 0, []
    rank, world = shard
    wrapped.train()
    for frozen in keep_eval:
        frozen.eval()
    for epoch in range(epochs):
        order = rng.permutation(len(split))
        losses = []
        for start in range(0, len(split), batch_size):
            batch = order[start:start + batch_size]
            idx = batch[rank::world] if world > 1 else batch
            if len(idx) == 0:  # a last batch smaller than the workers: every worker must still take a step
                idx = batch[:1]
            inputs = to_tensors(signature, {k: v[idx] for k, v in split.inputs.items()})
            labels = None if split.labels is None else torch.from_numpy(split.labels[idx])
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
