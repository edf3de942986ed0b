"""Each pass: config validation and round-trip, a structural check, a numeric check."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from compressor import run_pipeline
from compressor.errors import ConfigError, InputRefused, ModelLoadError, PassError
from compressor.passes.registry import PASSES, build_pass, get_pass_class
from compressor.run.context import RunContext
from compressor.run.pipeline import parse_pipeline
from compressor.run.step import apply_pass
from tests.pass_context import make_context


@pytest.fixture()
def runner(tmp_path, tiny_weights) -> RunContext:
    """A prepared run context, ready to apply passes by hand."""
    return make_context(tmp_path, tiny_weights)


@pytest.mark.parametrize("name", sorted(PASSES))
def test_config_round_trip_and_forbids_unknown_keys(name: str) -> None:
    cls = get_pass_class(name)
    p = build_pass(name, {})
    dumped = p.config.model_dump(mode="json")
    assert cls.config_class(**dumped) == p.config
    with pytest.raises(ConfigError, match="has no setting 'bogus'"):
        build_pass(name, {"bogus": 1})


def test_convert_onnx_parity_and_signature(runner: RunContext) -> None:
    step = apply_pass(runner, runner.reference, build_pass("convert.onnx"), "a", 0)
    art = step.artifact
    assert art.format.value == "onnx" and art.signature.inputs[0].shape == ("batch", 1, 8, 8)
    assert step.entry["parity"]["max_abs_error"] < 1e-4 and step.entry["parity"]["cosine"] > 0.9999
    assert step.entry["metric"] == pytest.approx(runner.reference_metric)
    legacy = apply_pass(runner, runner.reference, build_pass("convert.onnx", {"exporter": "torchscript", "opset": 17}), "a", 0)
    assert legacy.entry["parity"]["max_abs_error"] < 1e-4 and legacy.artifact.sha256 != art.sha256


def test_optimize_onnx(runner: RunContext) -> None:
    onnx_art = apply_pass(runner, runner.reference, build_pass("convert.onnx"), "a", 0).artifact
    step = apply_pass(runner, onnx_art, build_pass("optimize.onnx", {"level": "extended"}), "a", 1)
    assert step.entry["parity"]["max_abs_error"] < 1e-4


def _ops(path: Path) -> list[str]:
    import onnx

    return [n.op_type for n in onnx.load(str(path)).graph.node]


def test_static_quantization_structure_and_accuracy(runner: RunContext) -> None:
    import onnx

    from compressor.frameworks._onnx_graph import int8_coverage

    onnx_art = apply_pass(runner, runner.reference, build_pass("convert.onnx"), "a", 0).artifact
    step = apply_pass(runner, onnx_art, build_pass("quantize.onnx.static", {"calibration": "minmax", "nodes": "all"}), "a", 1)
    ops = _ops(step.artifact.path)
    assert ops.count("QuantizeLinear") >= 2 and ops.count("DequantizeLinear") >= 4
    cov = int8_coverage(onnx.load(str(step.artifact.path)))
    assert cov["int8_share"] == 1.0 and cov["float_compute_nodes"] == []
    assert step.artifact.size_bytes < 0.8 * onnx_art.size_bytes  # tiny model: graph overhead dominates
    assert step.entry["metric_drop"] < 0.03
    assert step.entry["report"]["calibration_samples"] == 64


@pytest.mark.parametrize("method", ["entropy", "percentile"])
def test_static_calibration_methods(runner: RunContext, method: str) -> None:
    onnx_art = apply_pass(runner, runner.reference, build_pass("convert.onnx"), "a", 0).artifact
    step = apply_pass(runner, onnx_art, build_pass("quantize.onnx.static", {"calibration": method}), "a", 1)
    assert step.entry["metric_drop"] < 0.05


def test_static_qoperator_and_exclusions(runner: RunContext) -> None:
    onnx_art = apply_pass(runner, runner.reference, build_pass("convert.onnx"), "a", 0).artifact
    qop = apply_pass(runner, onnx_art, build_pass("quantize.onnx.static", {"format": "qoperator"}), "a", 1)
    assert "QLinearConv" in _ops(qop.artifact.path)
    conv = next(n for n in _ops_nodes(onnx_art.path) if n.op_type == "Conv").name
    kept = apply_pass(runner, onnx_art, build_pass("quantize.onnx.static", {"exclude_nodes": [conv], "nodes": "all"}), "a", 1)
    import onnx

    from compressor.frameworks._onnx_graph import int8_coverage

    cov = int8_coverage(onnx.load(str(kept.artifact.path)))
    assert any(conv in n for n in cov["float_compute_nodes"]) and 0 < cov["int8_share"] < 1


def _ops_nodes(path: Path) -> list:
    import onnx

    return list(onnx.load(str(path)).graph.node)


def test_exclude_unknown_node_is_an_error(runner: RunContext) -> None:
    onnx_art = apply_pass(runner, runner.reference, build_pass("convert.onnx"), "a", 0).artifact
    with pytest.raises(PassError, match=r"exclude_nodes names 'conv_nope'"):
        apply_pass(runner, onnx_art, build_pass("quantize.onnx.static", {"exclude_nodes": ["conv_nope"]}), "a", 1)
    with pytest.raises(PassError, match=r"op_types names 'LSTM'"):
        apply_pass(runner, onnx_art, build_pass("quantize.onnx.dynamic", {"op_types": ["LSTM"]}), "a", 1)


def test_empty_calibration_split_is_an_error(runner: RunContext) -> None:

    onnx_art = apply_pass(runner, runner.reference, build_pass("convert.onnx"), "a", 0).artifact
    runner.data.splits["train"] = runner.data.splits["train"].take(0)
    runner.data._cache.clear()
    runner.data._fingerprints.clear()
    with pytest.raises(InputRefused, match=r"calibration split 'train' is empty.*quantize\.onnx\.static"):
        apply_pass(runner, onnx_art, build_pass("quantize.onnx.static"), "a", 1)


def test_dynamic_quantization(runner: RunContext) -> None:
    onnx_art = apply_pass(runner, runner.reference, build_pass("convert.onnx"), "a", 0).artifact
    step = apply_pass(runner, onnx_art, build_pass("quantize.onnx.dynamic"), "a", 1)
    ops = _ops(step.artifact.path)
    assert "MatMulInteger" in ops or "DynamicQuantizeLinear" in ops
    assert step.entry["metric_drop"] < 0.03


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_magnitude_pruning_reaches_sparsity(runner: RunContext, scope: str) -> None:
    step = apply_pass(runner, runner.reference, build_pass("prune.magnitude", {"sparsity": 0.7, "scope": scope}), "a", 0)
    report = step.entry["report"]
    assert report["sparsity"] == pytest.approx(0.7, abs=0.01)
    if scope == "layer":
        assert all(v == pytest.approx(0.7, abs=0.02) for v in report["per_layer"].values())
    assert step.artifact.meta["sparsity"] == report["sparsity"]


def test_pruning_with_finetuning_recovers(runner: RunContext) -> None:
    oneshot = apply_pass(runner, runner.reference, build_pass("prune.magnitude", {"sparsity": 0.9}), "a", 0)
    tuned = apply_pass(runner, runner.reference, build_pass("prune.magnitude", {
        "sparsity": 0.9, "finetune_epochs": 3, "schedule": "polynomial", "lr": 3e-3}), "a", 0)
    assert tuned.entry["report"]["sparsity"] == pytest.approx(0.9, abs=0.01)
    assert tuned.entry["metric"] > oneshot.entry["metric"]
    assert len(tuned.entry["report"]["finetune_loss"]) == 3


def test_pruning_include_exclude(runner: RunContext) -> None:
    step = apply_pass(runner, runner.reference, build_pass("prune.magnitude", {"sparsity": 0.5, "exclude": ["fc"]}), "a", 0)
    assert set(step.entry["report"]["per_layer"]) == {"conv"}
    assert step.entry["report"]["layers_skipped"] == {"fc": "matched by exclude"}
    with pytest.raises(PassError, match="found no layer to prune"):
        apply_pass(runner, runner.reference, build_pass("prune.magnitude", {"include": ["nothing*"]}), "a", 0)


def test_polynomial_schedule() -> None:
    from compressor.passes.prune.magnitude import polynomial_sparsity

    values = [polynomial_sparsity(0.9, s, 100) for s in range(0, 101, 10)]
    assert values[0] == 0.0 and values[-1] == pytest.approx(0.9)
    assert all(a <= b for a, b in zip(values, values[1:]))
    assert values[1] - values[0] > values[-1] - values[-2]  # fast first, slow last


def test_input_model_is_never_modified(runner: RunContext, tiny_weights: Path) -> None:
    before = tiny_weights.read_bytes()
    apply_pass(runner, runner.reference, build_pass("prune.magnitude", {"sparsity": 0.5}), "a", 0)
    assert tiny_weights.read_bytes() == before


def test_corrupt_onnx_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(np.random.default_rng(0).bytes(2000))
    raw = {"name": "x", "model": {"path": str(bad)}, "data": {"source": "digits"}, "variants": {"a": ["optimize.onnx"]}}
    with pytest.raises(ModelLoadError, match=r"broken\.onnx' is not a readable ONNX model"):
        run_pipeline(parse_pipeline(raw, tmp_path), tmp_path / "out", benchmark=False)
    assert not (tmp_path / "out" / "results.json").exists()


def test_model_without_quantizable_ops(tmp_path: Path) -> None:
    raw = {"name": "x", "model": {"factory": "tests.tiny_models:NoWeights"}, "data": {"source": "digits"},
           "variants": {"a": ["convert.onnx", "quantize.onnx.static"]}}
    results = run_pipeline(parse_pipeline(raw, tmp_path), tmp_path / "out", benchmark=False)
    v = results["variants"][0]
    assert v["status"] == "failed" and "no quantizable operators" in v["error"]


def test_small_reduction_convs_stay_float_and_the_bake_keeps_them_float(runner: RunContext) -> None:
    """min_int8_reduction keeps a 1-channel conv (9-long dot products) and its relu/pool in float;
    optimize.onnx with qdq_propagation off bakes that graph so ORT does not re-quantize the chain."""
    onnx_art = apply_pass(runner, runner.reference, build_pass("convert.onnx"), "a", 0).artifact
    q = apply_pass(runner, onnx_art, build_pass("quantize.onnx.static", {"min_int8_reduction": 16}), "a", 1)
    kept = q.entry["report"]["kept_float_for_speed"]
    assert len(kept) == 1 and kept[0]["reduction"] == 9 and len(kept[0]["nodes"]) == 3
    cov = q.entry["coverage"]
    assert 0 < cov["int8_mac_share"] < 1 and any("Conv" in n for n in cov["float_compute_nodes"])
    baked = apply_pass(runner, q.artifact, build_pass("optimize.onnx", {"level": "all", "qdq_propagation": False}), "a", 2)
    ops = _ops(baked.artifact.path)
    assert "QGemm" in ops and "QLinearConv" not in ops and "Conv" in ops  # fc int8, conv float
    assert baked.entry["parity"]["max_abs_error"] < 1e-4
    assert baked.entry["report"]["disabled_optimizers"] == ["QDQPropagationTransformer"]
    assert abs(baked.entry["metric"] - q.entry["metric"]) < 1e-9
