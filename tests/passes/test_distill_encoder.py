"""distill.kd on an encoder: a pruned copy ranked by output curvature, sequence features, trimmed padding."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from compressor.errors import ConfigError, InputRefused
from compressor.passes._torch_channels import ChannelSettings, output_curvature, prune_channels
from compressor.passes.registry import build_pass
from compressor.run.step import apply_pass
from tests.pass_context import make_context as make_runner

ENCODER = "tests.tiny_models:TinyEncoder"


def _token_data(path, n: int = 48, width: int = 12):
    rng = np.random.default_rng(0)
    lengths = rng.integers(2, width + 1, n)
    mask = (np.arange(width)[None, :] < lengths[:, None]).astype(np.int64)
    ids = rng.integers(1, 40, (n, width)) * mask
    np.savez(path, **{"x.input_ids": ids, "x.attention_mask": mask})
    return {"npz": str(path), "source": None, "calibration": {"split": "train", "limit": 16}}


def test_hessian_ranks_by_how_far_a_channel_moves_the_outputs() -> None:
    """Units with big incoming weights but almost no outgoing ones: L1 keeps them, hessian removes them."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    quiet = list(range(0, 16, 2))
    with torch.no_grad():
        model[0].weight[quiet] *= 10
        model[2].weight[:, quiet] *= 1e-3
    x = torch.randn(4, 8)

    def kept(importance, grads=None):
        clone = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
        clone.load_state_dict(model.state_dict())
        prune_channels(clone, (x,), ChannelSettings(ratio=0.5, importance=importance), grads=grads)
        rows = model[0].weight.detach()
        return {next(i for i in range(16) if torch.equal(rows[i], row)) for row in clone[0].weight.detach()}

    assert kept("l1") == set(quiet)
    assert kept("hessian", output_curvature([(torch.randn(32, 8),) for _ in range(4)])) == set(range(1, 16, 2))


def test_pruned_encoder_copy_distils_with_hidden_states_and_trimmed_padding(tmp_path) -> None:
    r = make_runner(tmp_path, None, ENCODER, data=_token_data(tmp_path / "tokens.npz"), metric="cosine")
    config = {"width": 0.5, "heads": 0.5, "importance": "hessian", "loss": "cosine", "trim_padding": True,
              "features": [[f"bert.encoder.layer.{i}"] * 2 for i in range(2)], "feature_weight": 0.5,
              "epochs": 2, "lr": 1e-3, "batch_size": 8}
    step = apply_pass(r, r.reference, build_pass("distill.kd", config), "a", 0)
    rep, art = step.entry["report"], step.artifact
    assert art.format.value == "torch_export" and rep["importance"] == "hessian"
    assert rep["student_params"] < rep["teacher_params"] and len(rep["loss"]) == 2
    assert rep["loss"][1] < rep["loss"][0]
    program = torch.export.load(str(art.path)).state_dict
    assert program["bert.encoder.layer.0.attention.self.query.weight"].shape == (16, 32)  # 2 heads of 8 left
    assert program["bert.encoder.layer.0.intermediate.dense.weight"].shape == (32, 32)  # MLP 64 -> 32
    assert step.entry["metric"] > 0.8
    # the pruned copy started from the least-squares refit of its 4 narrowed output projections
    assert {x["layer"] for x in rep["reconstruct"]} == {
        f"bert.encoder.layer.{i}.{n}.dense" for i in range(2) for n in ("attention.output", "output")}
    assert all(x["error_after"] < x["error_before"] for x in rep["reconstruct"])


def test_trimming_and_length_batches() -> None:
    from compressor.artifact import Signature, TensorSpec
    from compressor.data import Split
    from compressor.passes.distill._torch import length_plan, trimmed

    sig = Signature(inputs=(TensorSpec("input_ids", ("batch", 6), "int64"),
                            TensorSpec("attention_mask", ("batch", 6), "int64")))
    mask = torch.tensor([[1, 1, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0]])
    ids = torch.arange(12).reshape(2, 6)
    cut = trimmed([ids, mask], sig)
    assert [list(t.shape) for t in cut] == [[2, 3], [2, 3]] and torch.equal(cut[0], ids[:, :3])
    lengths = np.array([1, 6, 2, 5, 3, 4, 6, 1])
    m = (np.arange(6)[None, :] < lengths[:, None]).astype(np.int64)
    plan = length_plan(Split({"input_ids": m, "attention_mask": m}, None), sig, 2)
    batches = plan(np.random.default_rng(0))
    assert sorted(np.concatenate(batches).tolist()) == list(range(8))
    assert sorted(sorted(lengths[b].tolist()) for b in batches) == [[1, 1], [2, 3], [4, 5], [6, 6]]


def test_encoder_settings_are_checked(tmp_path) -> None:
    with pytest.raises(ConfigError, match="'importance' has no effect unless width is used"):
        build_pass("distill.kd", {"student": "tests.tiny_models:TinyMLP", "importance": "hessian"})
    r = make_runner(tmp_path, None, "tests.tiny_models:TinyResidual")
    with pytest.raises(InputRefused, match="trim_padding: true needs a model input named 'attention_mask'"):
        apply_pass(r, r.reference, build_pass("distill.kd", {"width": 0.5, "trim_padding": True}), "a", 0)
    declared = make_runner(tmp_path / "declared", None)  # TinyCNN declares its width kwarg
    with pytest.raises(InputRefused, match="importance: hessian applies to a pruned copy"):
        apply_pass(declared, declared.reference, build_pass("distill.kd", {"width": 0.5, "importance": "hessian"}),
                   "a", 0)
    with pytest.raises(InputRefused, match="reconstruct: False applies to a pruned copy"):
        apply_pass(declared, declared.reference, build_pass("distill.kd", {"width": 0.5, "reconstruct": False}),
                   "a", 0)
    with pytest.raises(ConfigError, match="'reconstruct' has no effect unless width is used"):
        build_pass("distill.kd", {"student": "tests.tiny_models:TinyMLP", "reconstruct": False})
