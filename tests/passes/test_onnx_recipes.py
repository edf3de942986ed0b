"""Orders of optimize.onnx and quantize.onnx.* that users reach for: they work, or are refused
before any work with the reason."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from compressor.errors import ConfigError, PassError
from compressor.passes.registry import build_pass
from compressor.run.pipeline import parse_pipeline
from compressor.run.step import apply_pass
from tests.conftest import pipeline_dict
from tests.pass_context import make_context


def parsed(tmp_path: Path, variants: dict) -> object:
    return parse_pipeline(pipeline_dict(Path("w.safetensors"), variants), tmp_path)


def domain_ops(path: Path) -> Counter:
    import onnx

    return Counter((n.domain, n.op_type) for n in onnx.load(str(path)).graph.node)


def test_optimize_level_auto_is_basic_before_a_quantizer_else_extended(tmp_path: Path) -> None:
    p = parsed(tmp_path, {
        "before": ["convert.onnx", "optimize.onnx", "quantize.onnx.static"],
        "after": ["convert.onnx", "quantize.onnx.static", "optimize.onnx"],
        "alone": ["convert.onnx", "optimize.onnx"],
    })
    assert p.variants["before"][1].config.level == "basic"
    assert "quantize.onnx.static follows" in p.variants["before"][1].level_reason
    assert p.variants["after"][2].config.level == "extended"
    assert p.variants["alone"][1].config.level == "extended"


@pytest.mark.parametrize("level", ["extended", "all"])
def test_fusing_level_before_a_quantizer_is_refused_when_the_file_is_read(tmp_path: Path, level: str) -> None:
    with pytest.raises(ConfigError) as err:
        parsed(tmp_path, {"v": ["convert.onnx", {"optimize.onnx": {"level": level}}, "quantize.onnx.dynamic"]})
    message = str(err.value)
    assert "variant 'v' step 2 (optimize.onnx)" in message and f"level '{level}'" in message
    assert "level: basic" in message and "\n" not in message


def test_quantizing_twice_is_refused_when_the_file_is_read(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"variant 'v' step 2 .*quantize.onnx.dynamic follows quantize.onnx.static"):
        parsed(tmp_path, {"v": ["convert.onnx", "quantize.onnx.static", "quantize.onnx.dynamic"]})


def test_optimize_then_quantize_runs_and_quantizes_the_convs(tmp_path: Path, tiny_weights: Path) -> None:
    ctx = make_context(tmp_path, tiny_weights)
    p = parse_pipeline(pipeline_dict(tiny_weights, {"v": ["convert.onnx", "optimize.onnx",
                                                          {"quantize.onnx.static": {"nodes": "all"}}]}), tmp_path)
    current = ctx.reference
    entries = []
    for i, step in enumerate(p.variants["v"]):
        result = apply_pass(ctx, current, step, "v", i)
        current, entries = result.artifact, entries + [result.entry]
    assert entries[1]["report"]["level"] == "basic" and entries[1]["report"]["level_reason"]
    ops = domain_ops(Path(current.path))
    assert not any(domain.startswith("com.microsoft") for domain, _ in ops)  # nothing ORT-only left float
    assert ops[("", "QuantizeLinear")] > 0 and entries[2]["coverage"]["int8_mac_share"] > 0.5


def test_quantizer_refuses_a_graph_with_ort_fused_ops_or_already_quantized(tmp_path: Path, tiny_weights: Path) -> None:
    ctx = make_context(tmp_path, tiny_weights)
    onnx_model = apply_pass(ctx, ctx.reference, build_pass("convert.onnx"), "a", 0).artifact
    fused = apply_pass(ctx, onnx_model, build_pass("optimize.onnx", {"level": "extended"}), "a", 1).artifact
    assert any(op.startswith("Fused") for _, op in domain_ops(Path(fused.path)))
    for name in ("quantize.onnx.static", "quantize.onnx.dynamic"):
        with pytest.raises(PassError, match=r"ONNX Runtime's own fused ops \(Fused"):
            build_pass(name).check(fused, ctx.pass_context("a", name))
    quantized = apply_pass(ctx, onnx_model, build_pass("quantize.onnx.dynamic"), "a", 1).artifact
    with pytest.raises(PassError, match=r"already quantized \(.*ConvInteger x"):
        build_pass("quantize.onnx.static").check(quantized, ctx.pass_context("a", "quantize.onnx.static"))
