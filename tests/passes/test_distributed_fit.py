"""workers: N trains data-parallel through Ray Train (gloo on CPU): the loss curve of two workers
follows one worker's, and a training pass with workers: 2 runs through a pipeline."""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from compressor.errors import ConfigError
from compressor.passes.registry import build_pass

ray = pytest.importorskip("ray")
pytest.importorskip("ray.train.torch")


@pytest.fixture(scope="module")
def ray_session() -> Any:
    ray.init(num_cpus=3, logging_level="ERROR", log_to_driver=False, include_dashboard=False)
    try:
        yield
    finally:
        ray.shutdown()


def _train(workers: int) -> tuple[list[float], dict[str, Any]]:
    import torch

    from compressor.artifact import BATCH, Signature, TensorSpec
    from compressor.data import load_bundle
    from compressor.passes._torch_fit import fit
    from compressor.run.pipeline import DataSpec
    from tests.tiny_models import TinyCNN

    torch.manual_seed(0)
    model = TinyCNN()
    split = load_bundle(DataSpec(source="digits")).split("training")
    history = fit(model, split, Signature((TensorSpec("input", (BATCH, 1, 8, 8)),)), epochs=3, lr=5e-3,
                  batch_size=64, workers=workers)
    return history, {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


def test_two_workers_follow_the_one_worker_loss_curve(ray_session) -> None:
    one, w1 = _train(1)
    two, w2 = _train(2)
    assert len(one) == len(two) == 3 and two[-1] < two[0]  # it learned
    # each global batch is shared out and the gradients averaged: the same curve up to float error
    # (the last, uneven batch of each epoch is the only place the halves differ in size)
    np.testing.assert_allclose(two, one, rtol=0.03)
    drift = max(float(np.abs(w1[k] - w2[k]).max()) for k in w1)
    assert 0 < drift < 0.05, drift


def test_a_finetune_pass_with_two_workers_runs_in_a_pipeline(ray_session, tmp_path, tiny_weights) -> None:
    from compressor import run_pipeline
    from compressor.run.pipeline import parse_pipeline
    from tests.conftest import pipeline_dict

    step = {"train.finetune": {"epochs": 1, "freeze": [], "lr": 1e-3}}
    two = {"train.finetune": {**step["train.finetune"], "workers": 2}}
    raw = pipeline_dict(tiny_weights, {"one": [step], "two": [two]})
    results = run_pipeline(parse_pipeline(raw, tmp_path), tmp_path / "out", benchmark=False)
    one_v, two_v = results["variants"]
    assert one_v["status"] == two_v["status"] == "ok", two_v.get("error")
    assert two_v["ledger"][0]["config"]["workers"] == 2 and "workers" not in one_v["ledger"][0]["config"]
    assert abs(one_v["metric"] - two_v["metric"]) < 0.03
    np.testing.assert_allclose(two_v["ledger"][0]["report"]["loss"], one_v["ledger"][0]["report"]["loss"], rtol=0.03)


def test_workers_without_fine_tuning_is_refused() -> None:
    with pytest.raises(ConfigError, match="workers"):
        build_pass("prune.magnitude", {"sparsity": 0.5, "workers": 2})
    with pytest.raises(ConfigError):
        build_pass("train.finetune", {"workers": 0})
