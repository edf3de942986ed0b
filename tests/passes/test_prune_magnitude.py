"""prune.magnitude: gradual schedule, layer selection with reasons, per-layer sparsity, bad input."""
from __future__ import annotations

import pytest

from compressor.errors import ConfigError, PassError
from compressor.passes.registry import build_pass
from compressor.run.step import apply_pass
from tests.conftest import train_tiny
from tests.pass_context import make_context as make_runner


@pytest.fixture(scope="module")
def bn_weights(tmp_path_factory):
    return train_tiny(tmp_path_factory.mktemp("bn") / "bn.safetensors", "tests.tiny_models:TinyBNCNN", epochs=3)


@pytest.fixture()
def bn_runner(tmp_path, bn_weights):
    return make_runner(tmp_path, bn_weights, "tests.tiny_models:TinyBNCNN")


@pytest.mark.parametrize("value", [-0.1, 1.0, 1.5])
def test_sparsity_outside_unit_interval_is_a_config_error(value: float) -> None:
    with pytest.raises(ConfigError, match=r"setting 'sparsity' = .* is invalid"):
        build_pass("prune.magnitude", {"sparsity": value})


def test_unsupported_layers_are_reported_as_skipped(bn_runner) -> None:
    step = apply_pass(bn_runner, bn_runner.reference, build_pass("prune.magnitude", {"sparsity": 0.6, "scope": "layer"}), "a", 0)
    report = step.entry["report"]
    assert report["layers_skipped"] == {"bn1": "unsupported type BatchNorm2d", "bn2": "unsupported type BatchNorm2d"}
    assert report["layers_skipped_count"] == 2 and report["layers_pruned"] == 3
    assert set(report["per_layer"]) == {"conv1", "conv2", "head"}
    assert all(v == pytest.approx(0.6, abs=0.02) for v in report["per_layer"].values())


def test_pruning_an_unsupported_layer_is_an_error(bn_runner) -> None:
    with pytest.raises(PassError, match=r"cannot prune layer 'bn1' of type BatchNorm2d.*Remove 'bn1' from include"):
        apply_pass(bn_runner, bn_runner.reference, build_pass("prune.magnitude", {"include": ["conv1", "bn1"]}), "a", 0)
    with pytest.raises(PassError, match=r"names layer 'conv9', which the model does not have"):
        apply_pass(bn_runner, bn_runner.reference, build_pass("prune.magnitude", {"exclude": ["conv9"]}), "a", 0)


def test_gradual_schedule_reaches_the_target_and_reports_it(bn_runner) -> None:
    config = {"sparsity": 0.8, "schedule": "polynomial", "finetune_epochs": 4, "ramp_fraction": 0.5,
              "update_every_steps": 2, "lr": 3e-3}
    step = apply_pass(bn_runner, bn_runner.reference, build_pass("prune.magnitude", config), "a", 0)
    report = step.entry["report"]
    assert report["sparsity"] == pytest.approx(0.8, abs=0.01)
    schedule = report["schedule"]
    assert len(schedule) == 4 and schedule[-2:] == [0.8, 0.8]  # ramp over the first half, then held
    assert 0 < schedule[0] < 0.8 and all(a <= b for a, b in zip(schedule, schedule[1:]))
    assert step.entry["metric_drop"] < 0.1
