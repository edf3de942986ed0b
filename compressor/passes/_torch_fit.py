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
from collections.abc import Callable
from typing import Any

from compressor.data import Split
from compressor.passes._torch_loop import pinned_threads, to_tensors, train_epochs

__all__ = ["TRAINING_THREADS_MAX", "fit", "pinned_threads", "to_tensors", "train_epochs", "training_threads"]


TRAINING_THREADS_MAX = 4  # torch's intra-op threads while training, at most; fewer on a smaller machine


def training_threads() -> int:
    """The intra-op thread count ``fit`` trains with: the usable cores, at most ``TRAINING_THREADS_MAX``."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count() or 1
    return max(1, min(TRAINING_THREADS_MAX, usable))


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
    plan: Callable[[Any], list[Any]] | None = None,
    schedule: str = "constant",
) -> list[float]:
    """Train ``module`` in place with Adam, on ``training_threads()`` threads; return the mean loss of each epoch.

    ``loss_fn(outputs, labels, inputs)`` defaults to cross entropy on the split's labels.
    ``after_step(step, total_steps)`` runs after every optimizer step (pruning re-applies masks).
    ``keep_eval`` modules stay in eval mode while the rest trains (frozen BatchNorm keeps its statistics).
    ``workers`` > 1 trains data-parallel through Ray Train (``_torch_ddp``), each global batch shared out.
    ``plan(rng)`` orders an epoch's samples into batches (index arrays); default a seeded shuffle.
    ``schedule``: ``constant`` lr, or ``cosine`` (linear warm-up over the first 5% of steps, then cosine decay to 0).
    """
    from compressor.errors import DataError

    if split.labels is None and loss_fn is None:
        raise DataError("training needs labels, but the training split has none; add 'y' to the data.")
    settings = {"epochs": epochs, "lr": lr, "batch_size": batch_size, "seed": seed, "loss_fn": loss_fn,
                "after_step": after_step, "parameters": parameters, "keep_eval": keep_eval,
                "plan": plan, "schedule": schedule}
    if workers > 1:
        from compressor.passes._torch_ddp import fit_distributed

        return fit_distributed(module, split, signature, workers, training_threads(), settings, say)
    with pinned_threads(training_threads()):
        return train_epochs(module, module, split, signature, say=say, **settings)
