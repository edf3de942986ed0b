"""prune.structured: channels removed along the graph, params/MACs reduced, reload without guessing."""
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
from tests.tiny_models import TinyCNN


@pytest.fixture(scope="module")
def bn_weights(tmp_path_factory):
    return train_tiny(tmp_path_factory.mktemp("bn") / "bn.safetensors", "tests.tiny_models:TinyBNCNN", epochs=4)


def test_factory_model_shrinks_and_reloads_from_new_kwargs(tmp_path, bn_weights) -> None:
    import torch
    from safetensors.torch import load_file

    from compressor.frameworks._torch import load_module

    r = make_runner(tmp_path, bn_weights, "tests.tiny_models:TinyBNCNN")
    step = apply_pass(r, r.reference, build_pass("prune.structured", {"sparsity": 0.5, "finetune_epochs": 2, "lr": 3e-3}), "a", 0)
    rep, art = step.entry["report"], step.artifact
    assert rep["widths"] == {"conv1": [8, 4], "conv2": [16, 8]}
    assert rep["layers_skipped"]["head"] == "its outputs are the model's outputs"
    assert rep["layers_skipped"]["bn1"].startswith("shrinks with 'conv1'")
    assert rep["params_after"] < 0.5 * rep["params_before"] and rep["macs_after"] < 0.35 * rep["macs_before"]
    assert json.loads((art.path / "model.json").read_text())["kwargs"] == {"c1": 4, "c2": 8}
    state = load_file(str(art.path / "weights.safetensors"))
    assert state["conv2.weight"].shape == (8, 4, 3, 3) and state["bn1.running_mean"].shape == (4,)
    assert state["head.weight"].shape == (10, 8 * 16)
    module = load_module(art.path, r.trust)  # rebuilt from factory + kwargs, strict load
    assert module(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    assert step.entry["metric_drop"] < 0.1
    assert art.size_bytes < 0.6 * r.reference.size_bytes


def test_removing_zero_filters_keeps_outputs_exactly(tmp_path) -> None:
    """Filters that are all zero contribute nothing: pruning them must not change the outputs."""
    import torch
    from safetensors.torch import save_file

    from compressor.frameworks._torch import load_module
    from compressor.measure.evaluate import predict

    torch.manual_seed(0)
    from samples.digits_cnn.model import DigitsCNN

    model = DigitsCNN(c1=8, c2=8, hidden=16)
    with torch.no_grad():
        for layer in (model.conv1, model.conv2):
            layer.weight[::2] = 0
            layer.bias[::2] = 0
            layer.weight[1::2] += 1.0  # make the kept filters clearly the largest
    weights = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    r = make_runner(tmp_path, weights, "samples.digits_cnn.model:DigitsCNN", {"c1": 8, "c2": 8, "hidden": 16},
                    data={"size": 28})
    step = apply_pass(r, r.reference, build_pass("prune.structured", {"sparsity": 0.5, "include": ["conv*"]}), "a", 0)
    assert json.loads((step.artifact.path / "model.json").read_text())["kwargs"] == {"c1": 4, "c2": 4, "hidden": 16}
    x = r.data.split("evaluation").take(16).inputs
    with r.trusted():  # the run's folders name the pipeline's factory
        np.testing.assert_allclose(predict(step.artifact, x), predict(r.reference, x), rtol=1e-5, atol=1e-4)
        assert load_module(step.artifact.path).fc1.in_features == 4 * 7 * 7


def test_torch_export_output_reloads(tmp_path, tiny_weights) -> None:
    r = make_runner(tmp_path, tiny_weights)
    step = apply_pass(r, r.reference, build_pass("prune.structured", {"sparsity": 0.25, "save_as": "torch_export"}), "a", 0)
    art = step.artifact
    assert art.format.value == "torch_export" and art.path.suffix == ".pt2"
    assert art.meta["source_factory"] == "tests.tiny_models:TinyCNN"
    assert step.entry["report"]["widths"] == {"conv": [8, 6]}
    assert step.entry["metric"] > 0.5  # evaluated through the torch runtime's .pt2 loader
    onnx = apply_pass(r, art, build_pass("convert.onnx"), "a", 1)
    assert onnx.entry["parity"]["max_abs_error"] < 1e-4


@pytest.mark.parametrize("factory, layer, what", [
    ("tests.tiny_models:TinyResidual", "stem", "an add: a residual"),
    ("tests.tiny_models:TinyConcat", "a", "a concatenation"),
])
def test_unfollowable_layers_are_refused_by_name(tmp_path, factory: str, layer: str, what: str) -> None:
    r = make_runner(tmp_path, None, factory)
    with pytest.raises(PassError, match=rf"cannot prune layer '{layer}': its output reaches .*{what}.*exclude: \['{layer}'\]"):
        apply_pass(r, r.reference, build_pass("prune.structured", {"save_as": "torch_export"}), "a", 0)


def test_residual_model_prunes_what_it_can_follow(tmp_path) -> None:
    r = make_runner(tmp_path, None, "tests.tiny_models:TinyResidual")
    with pytest.raises(PassError, match="cannot prune layer 'conv'"):
        apply_pass(r, r.reference, build_pass("prune.structured", {"include": ["conv"], "save_as": "torch_export"}), "a", 0)


class UndeclaredCNN(TinyCNN):
    """TinyCNN whose factory does not say which kwarg sets which width."""

    WIDTH_KWARGS: dict = {}


def test_factory_without_width_kwargs_needs_torch_export(tmp_path) -> None:
    r = make_runner(tmp_path, None, "tests.passes.test_prune_structured:UndeclaredCNN")
    with pytest.raises(InputRefused, match=r"would prune layer 'conv', but factory .* declares no width kwarg .* save_as: torch_export"):
        apply_pass(r, r.reference, build_pass("prune.structured"), "a", 0)


def test_unsupported_explicit_layer_is_an_error(tmp_path, bn_weights) -> None:
    r = make_runner(tmp_path, bn_weights, "tests.tiny_models:TinyBNCNN")
    with pytest.raises(PassError, match=r"cannot prune layer 'bn1' of type BatchNorm2d"):
        apply_pass(r, r.reference, build_pass("prune.structured", {"include": ["bn1"]}), "a", 0)


def test_mac_counter() -> None:
    import torch

    from compressor.frameworks._torch import params_and_macs
    from tests.tiny_models import TinyCNN

    cost = params_and_macs(TinyCNN(c=8), torch.zeros(3, 1, 8, 8))
    assert cost["macs"] == 8 * 8 * 8 * 9 + 8 * 16 * 10
    assert cost["params"] == 8 * 9 + 8 + 128 * 10 + 10


def test_cli_exit_2_for_unsupported_layer(tmp_path: Path) -> None:
    import subprocess
    import sys

    import yaml

    raw = {"name": "x", "model": {"factory": "tests.tiny_models:TinyBNCNN"}, "data": {"source": "digits"},
           "variants": {"a": [{"prune.structured": {"include": ["bn2"]}}]}}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(raw))
    proc = subprocess.run([sys.executable, "-m", "compressor.cli", "run", str(tmp_path / "p.yaml"), "--out",
                           str(tmp_path / "out"), "--no-bench"], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 2, proc.stderr
    assert "cannot prune layer 'bn2' of type BatchNorm2d" in proc.stderr and "Traceback" not in proc.stderr
