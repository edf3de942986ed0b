"""distill.kd: the loss, students from a factory or a width multiplier, feature matching, bad input."""
from __future__ import annotations

import json

import numpy as np
import pytest

from compressor.errors import ConfigError, InputRefused, PassError
from compressor.passes.registry import build_pass
from compressor.run.step import apply_pass
from tests.pass_context import make_context as make_runner


@pytest.fixture()
def runner(tmp_path, tiny_weights):
    return make_runner(tmp_path, tiny_weights)


def test_kd_loss_values() -> None:
    import torch
    import torch.nn.functional as F

    from compressor.passes.distill._torch import kd_loss

    torch.manual_seed(0)
    s, t, y = torch.randn(8, 10), torch.randn(8, 10), torch.randint(0, 10, (8,))
    assert float(kd_loss(t, t, y, 4.0, 1.0)) == pytest.approx(0.0, abs=1e-6)
    assert float(kd_loss(s, t, y, 4.0, 0.0)) == pytest.approx(float(F.cross_entropy(s, y)), rel=1e-6)
    p_t = F.softmax(t / 2, 1)
    kl = (p_t * (p_t.log() - F.log_softmax(s / 2, 1))).sum(1).mean()
    expected = 0.7 * 4 * kl + 0.3 * F.cross_entropy(s, y)
    assert float(kd_loss(s, t, y, 2.0, 0.7)) == pytest.approx(float(expected), rel=1e-5)


def test_student_from_factory(runner) -> None:
    config = {"student": "tests.tiny_models:TinyMLP", "student_kwargs": {"hidden": 16}, "epochs": 4, "lr": 5e-3}
    step = apply_pass(runner, runner.reference, build_pass("distill.kd", config), "a", 0)
    desc = json.loads((step.artifact.path / "model.json").read_text())
    assert desc == {"factory": "tests.tiny_models:TinyMLP", "kwargs": {"hidden": 16}}
    rep = step.entry["report"]
    assert len(rep["loss"]) == 4 and rep["loss"][-1] < rep["loss"][0]
    assert rep["student_params"] < rep["teacher_params"]
    assert step.entry["metric"] > 0.8


def test_student_from_width_is_seeded(tmp_path, tiny_weights) -> None:
    shas = []
    for sub in ("one", "two"):
        r = make_runner(tmp_path / sub, tiny_weights)
        step = apply_pass(r, r.reference, build_pass("distill.kd", {"width": 0.5, "epochs": 2}), "a", 0)
        assert json.loads((step.artifact.path / "model.json").read_text())["kwargs"] == {"c": 4}
        shas.append(step.artifact.sha256)
    assert shas[0] == shas[1]


def test_feature_matching_trains_an_adapter(runner) -> None:
    config = {"width": 0.5, "epochs": 3, "lr": 5e-3, "features": [["conv", "conv"]], "feature_weight": 0.5}
    step = apply_pass(runner, runner.reference, build_pass("distill.kd", config), "a", 0)
    assert step.entry["metric"] > 0.5
    with pytest.raises(PassError, match="the student has no layer 'nope'"):
        apply_pass(runner, runner.reference, build_pass("distill.kd", {"width": 0.5, "features": [["conv", "nope"]]}), "a", 0)


def test_student_with_other_output_shape_is_an_error(runner) -> None:
    config = {"student": "tests.tiny_models:TinyBNCNN", "student_kwargs": {"num_classes": 7}}
    with pytest.raises(PassError, match=r"outputs shape \[7\] per sample but the teacher outputs \[10\]"):
        apply_pass(runner, runner.reference, build_pass("distill.kd", config), "a", 0)


def test_config_errors() -> None:
    with pytest.raises(ConfigError, match="not both"):
        build_pass("distill.kd", {"student": "tests.tiny_models:TinyMLP", "width": 0.5})
    with pytest.raises(ConfigError, match="'alpha' = 1.5"):
        build_pass("distill.kd", {"alpha": 1.5})


def test_width_without_declared_kwargs_distills_a_pruned_copy_of_the_teacher(tmp_path) -> None:
    r = make_runner(tmp_path, None, "tests.tiny_models:TinyResidual")
    p = build_pass("distill.kd", {"width": 0.5, "epochs": 1, "loss": "mse", "schedule": "cosine"})
    step = apply_pass(r, r.reference, p, "a", 0)
    rep, art = step.entry["report"], step.artifact
    assert art.format.value == "torch_export" and art.path.suffix == ".pt2"
    assert rep["student"] == "pruned copy of the teacher" and rep["loss_kind"] == "mse" and "alpha" not in rep
    assert 0.2 * rep["teacher_params"] < rep["student_params"] < 0.6 * rep["teacher_params"]
    assert art.meta["source_factory"] == "tests.tiny_models:TinyResidual"
    declared = make_runner(tmp_path / "declared", None)  # TinyCNN declares its width kwarg
    with pytest.raises(InputRefused, match=r"heads: 0.5 applies to a pruned copy"):
        apply_pass(declared, declared.reference, build_pass("distill.kd", {"width": 0.5, "heads": 0.5}), "a", 0)


def test_learning_rate_schedules() -> None:
    from compressor.passes._torch_loop import lr_at

    assert [lr_at(s, 100, 0.1, "constant") for s in (0, 50, 99)] == [0.1, 0.1, 0.1]
    cosine = [lr_at(s, 100, 0.1, "cosine") for s in range(100)]
    assert cosine[0] == pytest.approx(0.02) and cosine[4] == pytest.approx(0.1)  # 5 warm-up steps
    assert all(a >= b for a, b in zip(cosine[4:], cosine[5:])) and cosine[-1] < 1e-3
    assert cosine[52] == pytest.approx(0.05, abs=2e-3)  # half-way through the decay
    with pytest.raises(ConfigError, match="schedule"):
        build_pass("distill.kd", {"schedule": "linear"})


def test_match_loss_and_its_settings() -> None:
    import torch

    from compressor.passes.distill._torch import match_loss

    t = torch.randn(4, 6)
    assert float(match_loss(2 * t, t, "cosine")) == pytest.approx(0.0, abs=1e-6)
    assert float(match_loss(-t, t, "cosine")) == pytest.approx(2.0, abs=1e-5)
    assert float(match_loss(t + 1, t, "mse")) == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ConfigError, match="'temperature' has no effect unless loss: kl"):
        build_pass("distill.kd", {"loss": "cosine", "temperature": 2.0})
    with pytest.raises(ConfigError, match="'heads' has no effect unless width is used"):
        build_pass("distill.kd", {"student": "tests.tiny_models:TinyMLP", "heads": 0.3})


def test_missing_training_split_or_labels(tmp_path, runner) -> None:
    runner.data.splits["train"] = runner.data.splits["train"].take(0)
    runner.data._cache.clear()
    runner.data._fingerprints.clear()
    with pytest.raises(InputRefused, match=r"training split 'train' is empty.*distill\.kd"):
        apply_pass(runner, runner.reference, build_pass("distill.kd"), "a", 0)
    x = np.random.default_rng(0).random((40, 1, 8, 8), dtype=np.float32)
    np.savez(tmp_path / "nolabels.npz", x=x)
    r = make_runner(tmp_path / "n", None, data={"npz": str(tmp_path / "nolabels.npz"), "source": None,
                                                   "calibration": {"split": "train", "limit": 30}}, metric="cosine")
    with pytest.raises(InputRefused, match="needs labels"):
        apply_pass(r, r.reference, build_pass("distill.kd", {"alpha": 0.5}), "a", 0)
