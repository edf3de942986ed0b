"""prune.nm: the N:M pattern holds in every group, fine-tuning keeps it, the report is honest."""
from __future__ import annotations

import pytest

from compressor.errors import ConfigError
from compressor.passes.registry import build_pass
from compressor.run.step import apply_pass
from tests.pass_context import make_context as make_runner


def test_mask_keeps_the_largest_n_of_every_m() -> None:
    import torch

    from compressor.passes.prune._torch_nm import nm_mask, pattern_holds

    torch.manual_seed(0)
    conv = torch.randn(6, 8, 3, 3)
    mask = nm_mask(conv, 2, 4)
    assert mask.shape == conv.shape and mask.sum() == conv.numel() // 2
    pruned = conv * mask
    assert pattern_holds(pruned, 2, 4) and not pattern_holds(conv, 2, 4)
    groups = conv.permute(0, 2, 3, 1).reshape(-1, 2, 4).abs()  # along input channels
    kept = pruned.permute(0, 2, 3, 1).reshape(-1, 2, 4).abs()
    assert torch.equal(kept.max(-1).values, groups.max(-1).values)  # the largest of each group survives
    linear = torch.randn(5, 12)
    assert pattern_holds(linear * nm_mask(linear, 1, 4), 1, 4)


def test_nm_pass_pattern_fine_tuning_and_report(tmp_path, tiny_weights) -> None:
    import torch
    from safetensors.torch import load_file

    from compressor.passes.prune._torch_nm import grouped_view

    r = make_runner(tmp_path, tiny_weights)
    step = apply_pass(r, r.reference, build_pass("prune.nm", {"finetune_epochs": 2, "lr": 3e-3}), "a", 0)
    rep = step.entry["report"]
    # conv has one input channel (not a multiple of 4): skipped with the reason; fc (128 inputs) pruned 2:4
    assert rep["layers_skipped"] == {"conv": "input dimension 1 is not a multiple of m=4"}
    state = load_file(str(step.artifact.path / "weights.safetensors"))
    groups = grouped_view(state["fc.weight"]).reshape(10, -1, 4)
    assert bool(((groups != 0).sum(-1) == 2).all())  # exactly 2 of every 4, after fine-tuning
    assert rep["per_layer"]["fc"] == pytest.approx(0.5)
    assert rep["gzip_weights_after"] < rep["gzip_weights_before"]
    assert "same file size" in rep["cpu_gain"] and "2x" in rep["gpu_gain"]
    assert step.artifact.size_bytes == pytest.approx(r.reference.size_bytes, rel=0.01)
    assert step.entry["metric_drop"] < 0.1
    assert torch.is_tensor(state["conv.weight"])


def test_n_must_be_below_m() -> None:
    with pytest.raises(ConfigError, match="n \\(4\\) must be smaller than m \\(4\\)"):
        build_pass("prune.nm", {"n": 4, "m": 4})
