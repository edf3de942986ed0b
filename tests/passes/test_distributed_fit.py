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


@pytest.mark.slow
def test_two_workers_follow_the_one_worker_loss_curve(ray_session, tmp_path, tiny_weights) -> None:
    """train.finetune with workers: 2 against workers: 1, through a pipeline (Ray Train, gloo on CPU)."""
    from compressor import run_pipeline
    from compressor.run.pipeline import parse_pipeline
    from tests.conftest import pipeline_dict

    step = {"train.finetune": {"epochs": 2, "freeze": [], "lr": 2e-3}}
    two = {"train.finetune": {**step["train.finetune"], "workers": 2}}
    raw = pipeline_dict(tiny_weights, {"one": [step], "two": [two]})
    results = run_pipeline(parse_pipeline(raw, tmp_path), tmp_path / "out", benchmark=False)
    one_v, two_v = results["variants"]
    assert one_v["status"] == two_v["status"] == "ok", two_v.get("error")
    assert two_v["ledger"][0]["config"]["workers"] == 2 and "workers" not in one_v["ledger"][0]["config"]
    one_loss, two_loss = one_v["ledger"][0]["report"]["loss"], two_v["ledger"][0]["report"]["loss"]
    assert len(one_loss) == len(two_loss) == 2 and two_loss[1] < two_loss[0]  # it learned
    # each global batch is shared out and the gradients averaged: the one-worker curve up to float error
    # (the last, uneven batch of each epoch is the only place the two halves differ in size)
    np.testing.assert_allclose(two_loss, one_loss, rtol=0.03)
    assert abs(one_v["metric"] - two_v["metric"]) <= 0.02
    assert one_v["artifact"]["sha256"] != two_v["artifact"]["sha256"]  # trained apart, not a cache hit


def test_workers_without_fine_tuning_is_refused() -> None:
    with pytest.raises(ConfigError, match="workers"):
        build_pass("prune.magnitude", {"sparsity": 0.5, "workers": 2})
    with pytest.raises(ConfigError):
        build_pass("train.finetune", {"workers": 0})
