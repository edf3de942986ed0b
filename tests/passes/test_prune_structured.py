"""prune.structured on Torch-Pruning: coupled channels go together, params/MACs drop, the result reloads."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from compressor.errors import ConfigError, FormatChainError, InputRefused
from compressor.passes._torch_channels import ChannelSettings, prune_channels
from compressor.passes.registry import build_pass
from compressor.run.step import apply_pass
from tests.conftest import train_tiny
from tests.pass_context import make_context as make_runner
from tests.tiny_models import TinyCNN


class DepthwiseNet(nn.Module):
    """conv -> bn -> depthwise conv -> pointwise conv, flattened into a Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.pw = nn.Conv2d(8, 8, 1)
        self.fc = nn.Linear(8 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dw(torch.relu(self.bn(self.conv(x))))
        x = nn.functional.max_pool2d(torch.relu(self.pw(x)), 2)
        return self.fc(torch.flatten(x, 1))


class ConcatNet(nn.Module):
    """Two conv branches concatenated, mixed by a 1x1 conv, pooled into a Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(1, 4, 1)
        self.mix = nn.Conv2d(8, 8, 1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.mix(torch.relu(torch.cat([self.a(x), self.b(x)], 1)))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


class AttentionBlock(nn.Module):
    """A Transformer block on nn.MultiheadAttention: attention and an MLP, each around a residual add."""

    def __init__(self, d: int = 16, hidden: int = 32) -> None:
        super().__init__()
        self.embed = nn.Linear(8, d)
        self.attn = nn.MultiheadAttention(d, 4, batch_first=True)
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.fc1, self.fc2 = nn.Linear(d, hidden), nn.Linear(hidden, d)
        self.head = nn.Linear(d, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x.reshape(x.shape[0], 8, 8))
        x = self.ln1(x + self.attn(x, x, x, need_weights=False)[0])
        x = self.ln2(x + self.fc2(torch.relu(self.fc1(x))))
        return self.head(x.mean(1))


class UndeclaredCNN(TinyCNN):
    """TinyCNN whose factory does not say which kwarg sets which width."""

    WIDTH_KWARGS: dict = {}


def _tiny_bert() -> nn.Module:
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(vocab_size=40, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=16)
    bert = BertModel(config, add_pooling_layer=False).eval()

    class Embedder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            return self.bert(input_ids=ids, attention_mask=mask).last_hidden_state.mean(1)

    return Embedder()


@pytest.fixture(scope="module")
def bn_weights(tmp_path_factory):
    return train_tiny(tmp_path_factory.mktemp("bn") / "bn.safetensors", "tests.tiny_models:TinyBNCNN", epochs=4)


def _kept(before: torch.Tensor, after: torch.Tensor) -> list[int]:
    """Which rows of ``before`` survive in ``after`` (pruning keeps rows and their order)."""
    return [next(i for i in range(len(before)) if torch.equal(before[i], row)) for row in after]


def test_residual_add_prunes_both_sides_together() -> None:
    from tests.tiny_models import TinyResidual

    torch.manual_seed(0)
    model = TinyResidual(c=8).eval()
    stem, conv = model.stem.bias.detach().clone(), model.conv.bias.detach().clone()
    pruner, groups = prune_channels(model, (torch.rand(2, 1, 8, 8),), ChannelSettings(ratio=0.5))
    assert pruner.widths() == {"stem": [8, 4], "conv": [8, 4]}
    assert _kept(stem, model.stem.bias) == _kept(conv, model.conv.bias)  # the same channels of the sum
    assert model.fc.in_features == 4 * 8 * 8 and model(torch.rand(3, 1, 8, 8)).shape == (3, 10)
    assert [sorted(g["layers"]) for g in groups] == [["conv", "stem"]]
    assert pruner.skipped == {"fc": "its outputs are the model's outputs"}


def test_concat_depthwise_and_flatten_follow_their_producers() -> None:
    model = ConcatNet().eval()
    a, b = model.a.bias.detach().clone(), model.b.bias.detach().clone()
    pruner, _ = prune_channels(model, (torch.rand(2, 1, 8, 8),), ChannelSettings(ratio=0.5))
    assert pruner.widths() == {"a": [4, 2], "b": [4, 2], "mix": [8, 4]}
    assert model.a.bias.tolist() == [a[i] for i in _kept(a, model.a.bias)] and len(_kept(b, model.b.bias)) == 2
    assert model.mix.in_channels == 4 and model(torch.rand(2, 1, 8, 8)).shape == (2, 10)
    model = DepthwiseNet().eval()
    pruner, groups = prune_channels(model, (torch.rand(2, 1, 8, 8),), ChannelSettings(ratio=0.5, round_to=4))
    assert model.bn.num_features == model.dw.groups == model.dw.out_channels == model.conv.out_channels == 4
    assert model.fc.in_features == model.pw.out_channels * 16 and model(torch.rand(2, 1, 8, 8)).shape == (2, 10)
    by_root = {g["layers"][0]: g for g in groups}
    assert {"conv", "dw"} <= set(next(g["layers"] for g in groups if "conv" in g["layers"]))
    assert all(g["params"][1] < g["params"][0] and g["macs"][1] < g["macs"][0] for g in by_root.values())


def test_global_scope_ranks_all_groups_together() -> None:
    from tests.tiny_models import DeepMLP

    def model() -> nn.Module:
        torch.manual_seed(0)
        m = DeepMLP(hidden=16).eval()
        with torch.no_grad():
            m.fc2.weight.fill_(0.5)
            m.fc2.weight[:12] = 1e-4  # 12 of fc2's 16 units are (nearly) dead
            m.fc1.weight.copy_(torch.sign(m.fc1.weight) * 0.5)  # fc1's units all alike
            m.fc3.weight.copy_(torch.sign(m.fc3.weight) * 0.5)
        return m

    x = (torch.rand(2, 1, 8, 8),)
    per_layer, _ = prune_channels(model(), x, ChannelSettings(ratio=0.5))
    assert {n: w[1] for n, w in per_layer.widths().items()} == {"fc1": 8, "fc2": 8, "fc3": 8}
    ranked, _ = prune_channels(model(), x, ChannelSettings(ratio=0.5, scope="global"))
    widths = {n: w[1] for n, w in ranked.widths().items()}
    assert widths["fc2"] == 4 and widths.get("fc1", 16) > 8  # the dead units go first; the live layer keeps more


def test_attention_block_prunes_mlp_width_and_keeps_attention_consistent() -> None:
    torch.manual_seed(0)
    model = AttentionBlock().eval()
    pruner, _ = prune_channels(model, (torch.rand(2, 1, 8, 8),), ChannelSettings(ratio=0.5, round_to=4))
    assert pruner.widths()["fc1"] == [32, 16] and model.fc2.in_features == 16
    assert model.attn.embed_dim % model.attn.num_heads == 0 and model(torch.rand(2, 1, 8, 8)).shape == (2, 10)


def test_packed_attention_loses_the_same_positions_of_every_head() -> None:
    """nn.MultiheadAttention: its width shrinks by a multiple of its heads at any ratio; the heads stay."""
    torch.manual_seed(0)
    model = AttentionBlock().eval()
    prune_channels(model, (torch.rand(2, 1, 8, 8),), ChannelSettings(ratio=0.4))  # 6.4 of 16, not a multiple of 4
    attn = model.attn
    assert attn.num_heads == 4 and attn.embed_dim == 8 and attn.head_dim == 2  # 2 positions of each head
    assert model(torch.rand(2, 1, 8, 8)).shape == (2, 10)


def test_hf_attention_heads_and_mlp_width_go_hidden_width_stays() -> None:
    model = _tiny_bert()
    ids, mask = torch.randint(1, 40, (2, 7)), torch.ones(2, 7, dtype=torch.long)
    pruner, _ = prune_channels(model, (ids, mask), ChannelSettings(ratio=0.5, heads=0.5))
    layer = model.bert.encoder.layer[0]
    assert pruner.heads() == {f"bert.encoder.layer.{i}.attention.self": [4, 2] for i in range(2)}
    assert layer.attention.self.query.out_features == layer.attention.self.value.out_features == 16  # 2 heads x 8
    assert layer.attention.output.dense.in_features == 16 and layer.intermediate.dense.out_features == 32
    assert layer.attention.self.num_attention_heads == 2
    assert model(ids, mask).shape == (2, 32)  # the hidden width reaches the output: kept
    assert pruner.skipped["bert.encoder.layer.1.output.dense"] == "its channels reach the model's outputs"


def test_least_squares_refit_brings_a_pruned_encoder_back_toward_the_original() -> None:
    """reconstruct(): the output projections whose inputs shrank are refitted to the unpruned outputs; on
    sentences it did not fit on, the pruned encoder's embeddings are closer to the original's than before."""
    import copy

    from compressor.passes._torch_refit import reconstruct

    torch.manual_seed(0)
    dense = _tiny_bert()
    model = copy.deepcopy(dense)

    def batch(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        mask = (torch.arange(12)[None] < torch.randint(4, 13, (16, 1), generator=g)).long()  # padded sentences
        return torch.randint(1, 40, (16, 12), generator=g) * mask, mask

    fit, held = [batch(i) for i in range(6)], batch(99)
    prune_channels(model, fit[0], ChannelSettings(ratio=0.5, heads=0.5))
    model.eval()

    def error() -> float:
        with torch.no_grad():
            return float((model(*held) - dense(*held)).norm() / dense(*held).norm())

    pruned = error()
    records = reconstruct(model, dense, fit)
    refitted = {r["layer"] for r in records}
    assert refitted == {f"bert.encoder.layer.{i}.{n}.dense" for i in range(2) for n in ("attention.output", "output")}
    assert all(r["error_after"] < r["error_before"] for r in records)
    assert records[0]["rows"] == int(sum(m.sum() for _, m in fit))  # padding positions left out
    assert error() < 0.8 * pruned


@pytest.mark.parametrize("bias", [True, False])
def test_refit_of_a_one_by_one_conv_reads_a_capped_sample_of_pixels(monkeypatch, bias: bool) -> None:
    import copy

    from compressor.passes import _torch_refit
    from compressor.passes._torch_refit import reconstruct

    class ConvProj(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.proj = nn.Conv2d(1, 8, 3, padding=1), nn.Conv2d(8, 4, 1, bias=bias)
            self.fc = nn.Linear(4 * 8 * 8, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(torch.flatten(self.proj(torch.relu(self.a(x))), 1))

    torch.manual_seed(0)
    dense = ConvProj().eval()
    model = copy.deepcopy(dense)
    batches = [(torch.rand(4, 1, 8, 8),) for _ in range(5)]
    prune_channels(model, batches[0], ChannelSettings(ratio=0.5, ignore=("proj",)))
    assert model.proj.in_channels == 4 and model.proj.out_channels == 4
    monkeypatch.setattr(_torch_refit, "REFIT_ROWS", 100)  # 5 batches x 256 pixels: 20 of each batch
    records = reconstruct(model.eval(), dense, batches)
    assert [(r["layer"], r["rows"]) for r in records] == [("proj", 100)]
    assert records[0]["error_after"] < records[0]["error_before"]
    assert (model.proj.bias is None) == (not bias)  # a layer without a bias is fitted without an offset


def test_reconstruct_in_the_pass_reports_every_refit(tmp_path) -> None:
    r = make_runner(tmp_path, None, "tests.tiny_models:TinyResidual")
    p = build_pass("prune.structured", {"sparsity": 0.25, "reconstruct": True, "batch_size": 8})
    assert p.reads() == ("training",)
    rep = apply_pass(r, r.reference, p, "a", 0).entry["report"]
    assert rep["widths"] == {"stem": [8, 6], "conv": [8, 6]}
    # TinyResidual's fc reads the pruned (flattened) width and keeps its output width: the layer refitted
    assert [x["layer"] for x in rep["reconstruct"]] == ["fc"]
    assert rep["reconstruct"][0]["error_after"] <= rep["reconstruct"][0]["error_before"]


def test_factory_model_shrinks_reloads_and_records_groups(tmp_path, bn_weights) -> None:
    from safetensors.torch import load_file

    from compressor.frameworks._torch import load_module

    r = make_runner(tmp_path, bn_weights, "tests.tiny_models:TinyBNCNN")
    p = build_pass("prune.structured", {"sparsity": 0.5, "steps": 2, "finetune_epochs": 1, "lr": 3e-3})
    step = apply_pass(r, r.reference, p, "a", 0)
    rep, art = step.entry["report"], step.artifact
    assert art.format.value == "torch" and rep["saved_as"] == "factory"
    assert rep["widths"] == {"conv1": [8, 4], "conv2": [16, 8]} and len(rep["finetune_loss"]) == 2
    assert json.loads((art.path / "model.json").read_text())["kwargs"] == {"c1": 4, "c2": 8}
    groups = rep["groups"]
    assert {g["step"] for g in groups} == {1, 2} and ["conv1", "bn1"] in [g["layers"] for g in groups]
    assert groups[0]["params"][0] == rep["params_before"] and groups[-1]["params"][1] == rep["params_after"]
    assert groups[0]["macs"][0] == rep["macs_before"] and groups[-1]["macs"][1] == rep["macs_after"]
    assert rep["params_after"] < 0.5 * rep["params_before"] and rep["macs_after"] < 0.35 * rep["macs_before"]
    state = load_file(str(art.path / "weights.safetensors"))
    assert state["conv2.weight"].shape == (8, 4, 3, 3) and state["bn1.running_mean"].shape == (4,)
    assert load_module(art.path, r.trust)(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    assert step.entry["metric_drop"] < 0.1


def test_removing_zero_filters_keeps_outputs_exactly(tmp_path) -> None:
    """Filters that are all zero contribute nothing: pruning them must not change the outputs."""
    from safetensors.torch import save_file

    from compressor.measure.evaluate import predict
    from samples.digits_cnn.model import DigitsCNN

    torch.manual_seed(0)
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


def test_undeclared_factory_falls_back_to_pt2_and_exports(tmp_path) -> None:
    r = make_runner(tmp_path, None, "tests.tiny_models:TinyResidual")
    step = apply_pass(r, r.reference, build_pass("prune.structured", {"sparsity": 0.25, "importance": "l2"}), "a", 0)
    art, rep = step.artifact, step.entry["report"]
    assert art.format.value == "torch_export" and art.path.suffix == ".pt2" and rep["saved_as"] == "torch_export"
    assert "declares no width kwarg" in rep["saved_as_reason"]
    assert art.meta["source_factory"] == "tests.tiny_models:TinyResidual"
    assert rep["widths"] == {"stem": [8, 6], "conv": [8, 6]}
    onnx = apply_pass(r, art, build_pass("convert.onnx"), "a", 1)
    assert onnx.entry["parity"]["max_abs_error"] < 1e-4


def test_taylor_importance_reads_gradients(tmp_path, bn_weights) -> None:
    r = make_runner(tmp_path, bn_weights, "tests.tiny_models:TinyBNCNN")
    p = build_pass("prune.structured", {"sparsity": 0.25, "importance": "taylor", "save_as": "torch_export"})
    assert p.reads() == ("training",)
    rep = apply_pass(r, r.reference, p, "a", 0).entry["report"]
    assert rep["widths"] == {"conv1": [8, 6], "conv2": [16, 12]}


def test_hessian_importance_needs_no_labels(tmp_path) -> None:
    x = np.random.default_rng(0).random((40, 1, 8, 8), dtype=np.float32)
    np.savez(tmp_path / "nolabels.npz", x=x)
    r = make_runner(tmp_path, None, "tests.tiny_models:TinyResidual", metric="cosine",
                    data={"npz": str(tmp_path / "nolabels.npz"), "source": None, "calibration": {"split": "train", "limit": 8}})
    p = build_pass("prune.structured", {"sparsity": 0.25, "importance": "hessian", "batch_size": 8})
    assert p.reads() == ("training",)
    rep = apply_pass(r, r.reference, p, "a", 0).entry["report"]
    assert rep["widths"] == {"stem": [8, 6], "conv": [8, 6]}


@pytest.mark.parametrize("config, message", [
    ({"importance": "l3"}, "importance"),
    ({"sparsity": 0, "heads": 0}, "remove nothing"),
    ({"sparsity": 1.0}, "sparsity"),
    ({"round_to": 0}, "round_to"),
    ({"steps": 0}, "steps"),
    ({"lr": 0.1}, "no effect unless finetune_epochs > 0"),
    ({"norm": "l1"}, "has no setting 'norm'"),
])
def test_bad_settings_are_one_line_errors(config: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        build_pass("prune.structured", config)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("factory, config, message", [
    ("tests.tiny_models:TinyCNN", {"heads": 0.5}, r"heads: 0.5 needs attention modules"),
    ("tests.tiny_models:TinyCNN", {"include": ["nope*"]}, r"include: 'nope\*' matches no Conv or Linear layer"),
    ("tests.passes.test_prune_structured:UndeclaredCNN", {"save_as": "factory"}, r"declares none.*save_as: auto"),
    ("tests.tiny_models:TinyCNN", {"ignore": ["conv"]}, r"found no channel group it may prune"),
    # Torch-Pruning 1.6 maps a concatenation straight into a flatten wrongly: caught by the dry run in check
    ("tests.tiny_models:TinyConcat", {}, r"removed the channels of 'a', 'b' but the model no longer runs.*ignore"),
])
def test_settings_the_model_cannot_take_are_refused_before_work(tmp_path, factory, config, message) -> None:
    r = make_runner(tmp_path, None, factory)
    with pytest.raises(InputRefused, match=message) as err:
        apply_pass(r, r.reference, build_pass("prune.structured", config), "a", 0)
    assert "\n" not in str(err.value)


def test_chain_check_knows_auto_may_write_a_pt2(tmp_path) -> None:
    from compressor.run.pipeline import parse_pipeline
    from tests.conftest import pipeline_dict

    raw = pipeline_dict(Path("w"), {"a": ["prune.structured", "quantize.torch.dynamic"]})
    with pytest.raises(FormatChainError, match=r"step 2: .*torch_export.*step 1 may write any of torch, torch_export"):
        parse_pipeline(raw, tmp_path).check_chains()
    raw = pipeline_dict(Path("w"), {"a": [{"prune.structured": {"save_as": "factory"}}, "quantize.torch.dynamic"]})
    parse_pipeline(raw, tmp_path).check_chains()


def test_mac_counter() -> None:
    from compressor.frameworks._torch import params_and_macs

    cost = params_and_macs(TinyCNN(c=8), torch.zeros(3, 1, 8, 8))
    assert cost["macs"] == 8 * 8 * 8 * 9 + 8 * 16 * 10
    assert cost["params"] == 8 * 9 + 8 + 128 * 10 + 10


def test_cli_exit_2_for_bad_setting(tmp_path: Path) -> None:
    import subprocess
    import sys

    import yaml

    raw = {"name": "x", "model": {"factory": "tests.tiny_models:TinyBNCNN"}, "data": {"source": "digits"},
           "variants": {"a": [{"prune.structured": {"heads": 0.3}}]}}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(raw))
    proc = subprocess.run([sys.executable, "-m", "compressor.cli", "run", str(tmp_path / "p.yaml"), "--out",
                           str(tmp_path / "out"), "--no-bench"], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 2, proc.stderr
    assert "heads: 0.3 needs attention modules" in proc.stderr and "Traceback" not in proc.stderr
