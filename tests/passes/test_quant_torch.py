"""quantize.torch.static / qat (PT2E via torchao), weight_only and smoothquant (neural-compressor)."""
from __future__ import annotations

from pathlib import Path

import pytest

from compressor.errors import ConfigError, InputRefused, PassError, VerificationError
from compressor.passes.registry import build_pass
from compressor.run.context import RunContext
from compressor.run.step import apply_pass
from tests.conftest import train_tiny
from tests.pass_context import make_context as make_runner

pytest.importorskip("torchao")


@pytest.fixture()
def runner(tmp_path: Path, tiny_weights: Path) -> RunContext:
    return make_runner(tmp_path, tiny_weights)


def graph_quant_ops(path: Path) -> dict[str, int]:
    """quantized_decomposed calls in the saved program, counted from the file (not from the pass report)."""
    from compressor.frameworks._torch import load_exported
    from compressor.passes.quantize._torch_pt2e import quant_ops

    return quant_ops(load_exported(path))


def onnx_ops(path: Path) -> list[str]:
    import onnx

    return [n.op_type for n in onnx.load(str(path)).graph.node]


# ---------------------------------------------------------------- static (PT2E)

def test_static_x86_writes_a_quantized_program(runner: RunContext) -> None:
    step = apply_pass(runner, runner.reference, build_pass("quantize.torch.static"), "a", 0)
    art = step.artifact
    assert art.format.value == "torch_export" and Path(art.path).suffix == ".pt2"
    ops = graph_quant_ops(Path(art.path))
    # x86: activations quantized per tensor in front of conv and linear, int8 weights dequantized per channel
    assert ops == {"dequantize_per_channel": 2, "dequantize_per_tensor": 2, "quantize_per_tensor": 2}
    assert step.entry["report"]["quant_ops"] == ops and step.entry["report"]["calibration_samples"] == 64
    assert step.entry["metric_drop"] < 0.02  # evaluated on the torch runtime from the loaded .pt2


def test_static_program_keeps_int8_weights_only(runner: RunContext) -> None:
    import torch

    from compressor.frameworks._torch import load_exported

    art = apply_pass(runner, runner.reference, build_pass("quantize.torch.static"), "a", 0).artifact
    state = load_exported(Path(art.path)).state_dict()
    weights = {k: v for k, v in state.items() if v.dim() >= 2}
    # the float originals convert_pt2e leaves behind are dropped: only the int8 conv and fc weights remain
    assert sorted(tuple(v.shape) for v in weights.values()) == [(8, 1, 3, 3), (10, 128)]
    assert all(v.dtype == torch.int8 for v in weights.values())


def test_static_program_runs_with_a_symbolic_batch(runner: RunContext) -> None:
    import numpy as np

    from backends import get_runtime

    art = apply_pass(runner, runner.reference, build_pass("quantize.torch.static"), "a", 0).artifact
    session = get_runtime("torch").open(art)
    for batch in (1, 7):
        (out,) = session.run({"input": np.random.default_rng(0).random((batch, 1, 8, 8), dtype=np.float32)})
        assert out.shape == (batch, 10)


@pytest.mark.parametrize("config, expected", [
    ({"quantizer": "xnnpack"}, {"dequantize_per_channel": 2, "dequantize_per_tensor": 5, "quantize_per_tensor": 5}),
    ({"per_channel": False}, {"dequantize_per_tensor": 4, "quantize_per_tensor": 2}),
])
def test_static_quantizer_and_granularity(runner: RunContext, config: dict, expected: dict) -> None:
    step = apply_pass(runner, runner.reference, build_pass("quantize.torch.static", config), "a", 0)
    assert graph_quant_ops(Path(step.artifact.path)) == expected
    assert step.entry["metric_drop"] < 0.03


def test_static_program_converts_to_onnx_qdq(runner: RunContext) -> None:
    art = apply_pass(runner, runner.reference, build_pass("quantize.torch.static"), "a", 0).artifact
    # ORT runs the QDQ graph with fused int8 kernels that round differently from the eager q/dq
    # reference by about one quantization step, so the default atol (1e-4) is too tight for this hop
    with pytest.raises(VerificationError, match="convert.onnx"):
        apply_pass(runner, art, build_pass("convert.onnx"), "a", 1)
    step = apply_pass(runner, art, build_pass("convert.onnx", {"atol": 0.05}), "a", 1)
    ops = onnx_ops(Path(step.artifact.path))
    assert ops.count("QuantizeLinear") == 2 and ops.count("DequantizeLinear") == 4
    assert step.entry["parity"]["cosine"] > 0.9999
    assert step.entry["metric_drop"] < 0.02


def test_static_refuses_a_model_with_nothing_to_quantize(tmp_path: Path) -> None:
    r = make_runner(tmp_path, None, factory="tests.tiny_models:NoWeights")
    with pytest.raises(PassError, match="quantized nothing"):
        apply_pass(r, r.reference, build_pass("quantize.torch.static"), "a", 0)


def test_static_bad_quantizer_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="quantizer"):
        build_pass("quantize.torch.static", {"quantizer": "arm"})


# ---------------------------------------------------------------- QAT (PT2E)

def test_qat_trains_and_writes_a_quantized_program(runner: RunContext) -> None:
    step = apply_pass(runner, runner.reference, build_pass("quantize.torch.qat", {"epochs": 2}), "a", 0)
    report = step.entry["report"]
    assert len(report["losses"]) == 2 and all(v > 0 for v in report["losses"])
    ops = graph_quant_ops(Path(step.artifact.path))
    assert ops == {"dequantize_per_channel": 2, "dequantize_per_tensor": 2, "quantize_per_tensor": 2}
    assert step.entry["metric_drop"] < 0.03  # within a few points of the float model


@pytest.mark.slow  # torchao's conv-bn fold in convert_pt2e exports ~130 pattern graphs (~20 s, a fixed cost)
def test_qat_with_batchnorm_and_xnnpack(tmp_path: Path) -> None:
    weights = train_tiny(tmp_path / "bn.safetensors", factory="tests.tiny_models:TinyBNCNN", epochs=2)
    r = make_runner(tmp_path, weights, factory="tests.tiny_models:TinyBNCNN",
                    data={"training": {"split": "train", "limit": 256}})  # BN fake-quant steps are slow eagerly
    step = apply_pass(r, r.reference, build_pass("quantize.torch.qat", {"epochs": 1, "quantizer": "xnnpack"}), "a", 0)
    ops = graph_quant_ops(Path(step.artifact.path))
    assert ops["dequantize_per_channel"] == 3  # two convs (BatchNorm folded in) and the head
    assert step.entry["metric_drop"] < 0.05


def test_qat_x86_per_tensor_is_refused(runner: RunContext) -> None:
    with pytest.raises(InputRefused, match="per_channel: false is not available with quantizer x86"):
        apply_pass(runner, runner.reference, build_pass("quantize.torch.qat", {"per_channel": False}), "a", 0)


# ---------------------------------------------------------------- weight-only (neural-compressor)

@pytest.fixture(scope="module")
def block_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tiny(tmp_path_factory.mktemp("block") / "block.safetensors",
                      factory="tests.tiny_models:BlockMLP", epochs=4)


def block_runner(tmp_path: Path, weights: Path) -> RunContext:
    return make_runner(tmp_path, weights, factory="tests.tiny_models:BlockMLP")


def linear_weights(path: Path) -> dict:
    from safetensors.torch import load_file

    return {k: v for k, v in load_file(str(path / "weights.safetensors")).items() if k.endswith("weight")}


def distinct_per_group(weight, group: int) -> int:
    return max(len(set(row[s:s + group].tolist())) for row in weight for s in range(0, weight.shape[1], group))


@pytest.mark.parametrize("bits", [4, 8])
def test_weight_only_rtn_puts_weights_on_the_grid(tmp_path: Path, block_weights: Path, bits: int) -> None:
    pytest.importorskip("neural_compressor")
    r = block_runner(tmp_path, block_weights)
    step = apply_pass(r, r.reference, build_pass("quantize.torch.weight_only", {"bits": bits, "group_size": 32}), "a", 0)
    report = step.entry["report"]
    assert step.artifact.format.value == "torch" and report["layers_quantized"] == report["linear_layers"] == 6
    before, after = linear_weights(Path(r.reference.path)), linear_weights(Path(step.artifact.path))
    assert before.keys() == after.keys()
    for name, w in after.items():  # read back from the file: every group holds at most 2**bits values
        assert distinct_per_group(w, 32) <= 2 ** bits, name
        assert not (w == before[name]).all()
    assert report["max_levels_per_group"] <= 2 ** bits
    assert step.entry["metric_drop"] < (0.03 if bits == 4 else 0.005)


def test_weight_only_gptq_and_awq_calibrate(tmp_path: Path, block_weights: Path, monkeypatch) -> None:
    pytest.importorskip("neural_compressor")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # nothing may be fetched from the hub
    r = block_runner(tmp_path, block_weights)
    gptq = apply_pass(r, r.reference, build_pass("quantize.torch.weight_only", {"algorithm": "gptq"}), "a", 0)
    # INC's GPTQ quantizes the Linear layers inside the blocks only (embed and head stay float)
    assert gptq.entry["report"]["layers_quantized"] == 4 and gptq.entry["report"]["max_levels_per_group"] <= 16
    after = linear_weights(Path(gptq.artifact.path))
    assert distinct_per_group(after["layers.0.fc1.weight"], 32) <= 16
    assert distinct_per_group(after["embed.weight"], 32) > 16
    assert gptq.entry["metric_drop"] < 0.03
    awq = apply_pass(r, r.reference, build_pass("quantize.torch.weight_only", {"algorithm": "awq"}), "a", 0)
    assert awq.entry["report"]["layers_quantized"] == 6 and awq.entry["metric_drop"] < 0.03


def test_weight_only_result_converts_to_onnx(tmp_path: Path, block_weights: Path) -> None:
    pytest.importorskip("neural_compressor")
    r = block_runner(tmp_path, block_weights)
    art = apply_pass(r, r.reference, build_pass("quantize.torch.weight_only"), "a", 0).artifact
    step = apply_pass(r, art, build_pass("convert.onnx"), "a", 1)
    assert step.entry["parity"]["max_abs_error"] < 1e-4


@pytest.mark.parametrize("algorithm", ["gptq", "awq"])
def test_weight_only_calibrated_algorithms_need_blocks(tmp_path: Path, algorithm: str) -> None:
    pytest.importorskip("neural_compressor")
    weights = train_tiny(tmp_path / "mlp.safetensors", factory="tests.tiny_models:TinyMLP", epochs=1)
    r = make_runner(tmp_path, weights, factory="tests.tiny_models:TinyMLP")
    with pytest.raises(PassError, match=f"algorithm {algorithm} .*needs the model's repeated blocks in an nn.ModuleList"):
        apply_pass(r, r.reference, build_pass("quantize.torch.weight_only", {"algorithm": algorithm}), "a", 0)


def test_weight_only_needs_linear(tmp_path: Path) -> None:
    pytest.importorskip("neural_compressor")
    r = make_runner(tmp_path, None, factory="tests.tiny_models:NoWeights")
    with pytest.raises(PassError, match="no nn.Linear layer"):
        apply_pass(r, r.reference, build_pass("quantize.torch.weight_only"), "a", 0)


@pytest.mark.parametrize("raw", [{"bits": 3}, {"group_size": 0}, {"algorithm": "hqq"}])
def test_weight_only_bad_settings(raw: dict) -> None:
    with pytest.raises(ConfigError):
        build_pass("quantize.torch.weight_only", raw)


# ---------------------------------------------------------------- smoothquant (neural-compressor + IPEX)

def test_smoothquant_without_ipex_is_refused(runner: RunContext) -> None:
    import importlib.util

    if importlib.util.find_spec("intel_extension_for_pytorch") is not None:
        pytest.skip("intel_extension_for_pytorch is installed here")
    with pytest.raises(PassError, match="intel_extension_for_pytorch .*quantize.torch.static"):
        apply_pass(runner, runner.reference, build_pass("quantize.torch.smoothquant", {"alpha": 0.6}), "a", 0)
