"""Which outputs a metric scores, and references or labels that cannot be right, refused in prepare."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from compressor.errors import ConfigError, DataError
from compressor.run.context import prepare
from compressor.run.pipeline import parse_pipeline


def _two_output_model(path: Path, scale: float = 1.0, log: bool = False) -> Path:
    """logits = x @ A (3 classes) and embedding = (x @ B) * scale (or log of it: NaN for negatives)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes = [helper.make_node("MatMul", ["x", "A"], ["logits"]), helper.make_node("MatMul", ["x", "B"], ["e0"]),
             helper.make_node("Mul", ["e0", "s"], ["e1" if log else "embedding"])]
    if log:
        nodes.append(helper.make_node("Log", ["e1"], ["embedding"]))
    graph = helper.make_graph(
        nodes, "two", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 5])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", 3]),
         helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["n", 4])],
        initializer=[numpy_helper.from_array(rng.normal(size=(5, 3)).astype(np.float32), "A"),
                     numpy_helper.from_array(rng.normal(size=(5, 4)).astype(np.float32), "B"),
                     numpy_helper.from_array(np.array(scale, np.float32), "s")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _prepare(tmp: Path, metric, labels: np.ndarray | None = None, **model):
    _two_output_model(tmp / "m.onnx", **model)
    arrays = {"x": np.random.default_rng(1).normal(size=(40, 5)).astype(np.float32)}
    if labels is not None:
        arrays["y"] = labels
    np.savez(tmp / "d.npz", **arrays)
    raw = {"name": "two", "model": {"path": "m.onnx"}, "data": {"npz": "d.npz"}, "metric": metric,
           "variants": {"opt": ["optimize.onnx"]}}
    return prepare(parse_pipeline(raw, tmp), tmp / "cache")


def test_accuracy_on_several_outputs_must_name_one(tmp_path) -> None:
    labels = np.arange(40) % 3
    with pytest.raises(ConfigError, match=r"metric 'accuracy' scores one classification output but the model has "
                                          r"outputs \['logits', 'embedding'\]; name it"):
        _prepare(tmp_path, "accuracy", labels)
    ctx = _prepare(tmp_path, {"name": "accuracy", "outputs": ["logits"]}, labels)
    assert ctx.evaluator.scored == {"logits": 0} and 0.0 <= ctx.reference_metric <= 1.0
    with pytest.raises(ConfigError, match="scores one classification output.*names \\['logits', 'embedding'\\]"):
        _prepare(tmp_path, {"name": "top5", "outputs": ["logits", "embedding"]}, labels)
    with pytest.raises(ConfigError, match=r"metric.outputs names \['scores'\], not outputs of the model"):
        _prepare(tmp_path, {"name": "cosine", "outputs": ["scores"]})


def test_labels_outside_the_classes_are_refused(tmp_path) -> None:
    labels = np.arange(40) % 5  # the model has 3 classes
    with pytest.raises(DataError, match=r"evaluation label 4 is outside the model's 3 classes \(output 'logits'"):
        _prepare(tmp_path, {"name": "accuracy", "outputs": ["logits"]}, labels)


def test_cosine_scores_every_output_by_default(tmp_path) -> None:
    ctx = _prepare(tmp_path, "cosine")
    assert ctx.evaluator.scored == {"logits": 0, "embedding": 1}
    assert set(ctx.metric_detail(ctx.reference)) == {"logits", "embedding"} and ctx.reference_metric == pytest.approx(1.0)
    ctx = _prepare(tmp_path, {"name": "mse", "outputs": ["embedding"]})
    assert ctx.evaluator.scored == {"embedding": 1} and ctx.reference_metric == 0.0


def test_a_degenerate_reference_is_refused(tmp_path) -> None:
    with pytest.raises(DataError, match=r"reference model's output 'embedding'.*near zero everywhere.*metric.outputs"):
        _prepare(tmp_path, "cosine", scale=1e-9)
    with pytest.raises(DataError, match=r"reference model's output 'embedding'.*NaN/inf"):
        _prepare(tmp_path, "mse", log=True)
    _prepare(tmp_path, {"name": "cosine", "outputs": ["logits"]}, scale=1e-9)  # the sound output alone is fine


@pytest.mark.parametrize("metric,ok", [("accuracy", False), ("top5", False), ("cosine", False), ("mse", True)])
def test_max_drop_above_one_for_a_bounded_metric(tmp_path, metric: str, ok: bool) -> None:
    raw = {"name": "b", "model": {"path": str(_two_output_model(tmp_path / "m.onnx"))}, "data": {"source": "digits"},
           "metric": metric, "budget": {"max_drop": 1.5}, "variants": {"opt": ["optimize.onnx"]}}
    if ok:
        parse_pipeline(raw, tmp_path)
    else:
        with pytest.raises(ConfigError, match=rf"max_drop = 1.5 .* metric '{metric}'.*give max_drop <= 1"):
            parse_pipeline(raw, tmp_path)


def test_results_count_the_samples_each_role_used(tmp_path) -> None:
    from compressor.passes.registry import build_pass
    from compressor.run.results import data_sizes
    from compressor.run.step import VariantOutcome

    ctx = _prepare(tmp_path, "cosine")
    assert data_sizes(ctx, [VariantOutcome("opt", [build_pass("optimize.onnx", {})])]) == {
        "evaluation_samples": 10, "evaluation_batch_size": 64}
    static = VariantOutcome("int8", [build_pass("quantize.onnx.static", {})])
    assert data_sizes(ctx, [static])["calibration_samples"] == 30
