"""Data-parallel training through Ray Train's ``TorchTrainer``: the ``workers: N`` of training passes.

Each of N workers holds a copy of the model wrapped in DistributedDataParallel (gloo on CPU, NCCL
where every worker has a GPU); all draw the same seeded permutation and each takes its share of
every global batch of ``batch_size`` samples, so the averaged gradient is the gradient of the whole
batch and the loss curve follows the one-worker curve (up to float reassociation). Rank 0 sends
the trained weights back as a Ray Train checkpoint (safetensors), loaded into the caller's module.

A Ray session already started (a Ray executor, a test's cluster) is used; else Ray starts one on
this machine for the fit and stops it after.
"""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from compressor.data import Split
from compressor.errors import ConfigError, PassError

STATE_FILE = "model.safetensors"
HISTORY_FILE = "history.json"


def _worker_loop(config: dict[str, Any]) -> None:
    """One worker's share of the training (runs inside a Ray Train worker)."""
    import torch
    import torch.distributed as dist
    import ray.train
    import ray.train.torch
    from safetensors.torch import save_file

    from compressor.passes._torch_loop import pinned_threads, train_epochs

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    module = config["module"]
    wrapped = ray.train.torch.prepare_model(module, parallel_strategy_kwargs={"find_unused_parameters": True})

    def reduce_mean(value: float) -> float:
        t = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(t)
        return float(t.item()) / world

    with pinned_threads(config["threads"]):
        history = train_epochs(wrapped, module, config["split"], config["signature"], shard=(rank, world),
                               reduce=reduce_mean, **config["fit"])
    with tempfile.TemporaryDirectory() as tmp:
        if rank == 0:
            state = {k: v.detach().contiguous().clone() for k, v in module.state_dict().items()}
            save_file(state, str(Path(tmp) / STATE_FILE))
            (Path(tmp) / HISTORY_FILE).write_text(json.dumps(history))
        checkpoint = ray.train.Checkpoint.from_directory(tmp) if rank == 0 else None
        ray.train.report({"loss": history[-1] if history else float("nan")}, checkpoint=checkpoint)


def fit_distributed(module: Any, split: Split, signature: Any, workers: int, threads: int,
                    fit: dict[str, Any], say: Callable[[str], None] | None = None) -> list[float]:
    """Train ``module`` in place on ``workers`` Ray Train workers; return the mean loss of each epoch."""
    try:
        import ray
        from ray.train import RunConfig, ScalingConfig
        from ray.train.torch import TorchConfig, TorchTrainer
    except ImportError:
        raise ConfigError(f"workers: {workers} trains through Ray Train, which is not installed; "
                          f"pip install 'compressor[search]' or set workers: 1.") from None
    import torch
    from safetensors.torch import load_file

    if len(split) < workers:
        raise ConfigError(f"workers: {workers} is more than the {len(split)} training samples; lower workers.")
    started = not ray.is_initialized()
    if started:  # Ray Train's controller needs a slot beside the workers, whatever the core count
        ray.init(num_cpus=max(os.cpu_count() or 1, workers + 1), logging_level="ERROR", log_to_driver=False,
                 include_dashboard=False)
    gpu = torch.cuda.is_available() and torch.cuda.device_count() >= workers
    if say is not None:
        say(f"training on {workers} Ray Train workers ({'nccl' if gpu else 'gloo'})")
    try:
        with tempfile.TemporaryDirectory(prefix="compressor-train-") as storage:
            trainer = TorchTrainer(
                _worker_loop,
                train_loop_config={"module": module, "split": split, "signature": signature, "fit": fit,
                                   "threads": threads},
                torch_config=TorchConfig(backend="nccl" if gpu else "gloo"),
                scaling_config=ScalingConfig(num_workers=workers, use_gpu=gpu,
                                             resources_per_worker={"CPU": 1}),
                run_config=RunConfig(storage_path=storage, name="fit"),
            )
            result = trainer.fit()
            if result.checkpoint is None:
                raise PassError(f"distributed training on {workers} workers returned no weights: {result.error}")
            with result.checkpoint.as_directory() as folder:
                state = load_file(str(Path(folder) / STATE_FILE))
                history = json.loads((Path(folder) / HISTORY_FILE).read_text())
    finally:
        if started:
            ray.shutdown()
    with torch.no_grad():
        module.load_state_dict(state, strict=True)
    module.eval()
    if say is not None and history:
        say(f"{len(history)} epochs on {workers} workers, last loss {history[-1]:.4f}")
    return [float(x) for x in np.asarray(history, dtype=float)]
