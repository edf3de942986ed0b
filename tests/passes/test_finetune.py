"""train.finetune: a frozen backbone stays put, the new head trains and reloads from recorded kwargs."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from compressor.errors import InputRefused, PassError
from compressor.passes.registry import build_pass
from compressor.run.step import apply_pass
from tests.conftest import train_tiny
from tests.pass_context import make_context as make_runner


@pytest.fixture(scope="module")
def bn_weights(tmp_path_factory):
    return train_tiny(tmp_path_factory.mktemp("bn") / "bn.safetensors", "tests.tiny_models:TinyBNCNN", epochs=3)


def test_frozen_backbone_new_head(tmp_path, bn_weights) -> None:
    from safetensors.torch import load_file

    r = make_runner(tmp_path, bn_weights, "tests.tiny_models:TinyBNCNN")
    config = {"epochs": 3, "lr": 5e-3, "head": {"module": "head", "num_classes": 10}}
    step = apply_pass(r, r.reference, build_pass("train.finetune", config), "a", 0)
    before = load_file(str(r.reference.path / "weights.safetensors"))
    after = load_file(str(step.artifact.path / "weights.safetensors"))
    for name in ("conv1.weight", "conv2.weight", "bn1.weight", "bn1.running_mean", "bn2.running_var"):
        assert np.array_equal(before[name].numpy(), after[name].numpy()), name  # frozen, stats kept
    assert not np.allclose(before["head.weight"].numpy(), after["head.weight"].numpy())
    rep = step.entry["report"]
    assert rep["head"] == "head" and rep["trainable_params"] == 16 * 16 * 10 + 10 and rep["frozen_batchnorm"] == 2
    assert step.entry["metric"] > 0.8  # a new head on trained features learns the task quickly


def test_new_number_of_classes_is_recorded_in_kwargs(tmp_path) -> None:
    import torch

    from compressor.frameworks._torch import load_module

    config = {"epochs": 2, "lr": 5e-3, "freeze": [], "head": {"module": "head", "num_classes": 10}}
    # the 10 digit labels fit the new head the pipeline declares, not the 4-class input model
    from tests.conftest import pipeline_dict
    from tests.pass_context import context_for

    raw = pipeline_dict(Path("unused"), {"a": [{"train.finetune": config}]})
    raw["model"] = {"factory": "tests.tiny_models:TinyBNCNN", "kwargs": {"num_classes": 4}}
    r = context_for(tmp_path, raw)
    assert r.reference.signature.outputs[0].shape == ("batch", 4)
    step = apply_pass(r, r.reference, build_pass("train.finetune", config), "a", 0)
    assert json.loads((step.artifact.path / "model.json").read_text())["kwargs"] == {"num_classes": 10}
    assert step.artifact.signature.outputs[0].shape == ("batch", 10)
    assert load_module(step.artifact.path, r.trust)(torch.zeros(1, 1, 8, 8)).shape == (1, 10)
    assert step.entry["metric"] > 0.5


def test_freeze_patterns(tmp_path, bn_weights) -> None:
    from safetensors.torch import load_file

    r = make_runner(tmp_path, bn_weights, "tests.tiny_models:TinyBNCNN")
    step = apply_pass(r, r.reference, build_pass("train.finetune", {"epochs": 1, "freeze": ["conv1.*", "bn1.*"]}), "a", 0)
    before = load_file(str(r.reference.path / "weights.safetensors"))
    after = load_file(str(step.artifact.path / "weights.safetensors"))
    assert np.array_equal(before["conv1.weight"].numpy(), after["conv1.weight"].numpy())
    assert not np.array_equal(before["conv2.weight"].numpy(), after["conv2.weight"].numpy())


def test_bad_input(tmp_path, bn_weights, tiny_weights) -> None:
    r = make_runner(tmp_path, bn_weights, "tests.tiny_models:TinyBNCNN")
    with pytest.raises(PassError, match="freeze pattern 'backbone.*' matches no parameter"):
        apply_pass(r, r.reference, build_pass("train.finetune", {"freeze": ["backbone.*"]}), "a", 0)
    with pytest.raises(PassError, match="head.module 'classifier' is not a layer"):
        apply_pass(r, r.reference, build_pass("train.finetune", {"head": {"module": "classifier", "num_classes": 3}}), "a", 0)
    with pytest.raises(PassError, match="is a BatchNorm2d; it replaces a Linear"):
        apply_pass(r, r.reference, build_pass("train.finetune", {"head": {"module": "bn2", "num_classes": 3}}), "a", 0)
    t = make_runner(tmp_path / "t", tiny_weights)
    with pytest.raises(PassError, match="does not take 'num_classes'"):
        apply_pass(t, t.reference, build_pass("train.finetune", {"head": {"module": "fc", "num_classes": 3}}), "a", 0)
    r.data.splits["train"] = r.data.splits["train"].take(0)
    r.data._cache.clear()
    r.data._fingerprints.clear()
    with pytest.raises(InputRefused, match=r"training split 'train' is empty.*train\.finetune"):
        apply_pass(r, r.reference, build_pass("train.finetune"), "a", 0)
