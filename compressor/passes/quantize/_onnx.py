"""ONNX Runtime quantizer calls (the ONNX side of the quantize.onnx.* passes)."""
from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from compressor.errors import DataError, PassError

log = logging.getLogger(__name__)


def graph_nodes(path: Path) -> list[Any]:
    from compressor.passes.optimize._onnx import load_onnx

    return list(load_onnx(path, load_weights=False).graph.node)


def check_node_names(path: Path, names: list[str], pass_name: str) -> None:
    """Every node to exclude must exist: a misspelled name is never silently ignored."""
    present = {n.name for n in graph_nodes(path)}
    for name in names:
        if name not in present:
            from compressor.errors import did_you_mean

            raise PassError(
                f"pass '{pass_name}': exclude_nodes names '{name}', which is not a node of the model."
                f"{did_you_mean(name, present)} Run 'compressor inspect' on the parent to see node names."
            )


def check_op_types(path: Path, op_types: list[str] | None, pass_name: str) -> None:
    """Every requested op type must occur in the graph, and something must be quantizable."""
    present = {n.op_type for n in graph_nodes(path)}
    quantizable = present & {"Conv", "MatMul", "Gemm", "ConvTranspose", "Attention", "Gather", "LSTM"}
    if not quantizable:
        raise PassError(
            f"pass '{pass_name}': the model has no quantizable operators (it has {sorted(present)}); "
            f"quantization needs Conv, MatMul or Gemm nodes."
        )
    for op in op_types or []:
        if op not in present:
            raise PassError(
                f"pass '{pass_name}': op_types names '{op}', which does not occur in the model "
                f"(present: {', '.join(sorted(present))}); fix op_types."
            )


class SplitReader:
    """A CalibrationDataReader streaming batches of the calibration split, one at a time."""

    def __init__(self, split: Any, signature: Any, batch_size: int = 32) -> None:
        self._split = split
        self._signature = signature
        self._batch_size = batch_size
        self._iter: Iterator[dict[str, np.ndarray]] | None = None
        self.rewind()

    def _gen(self) -> Iterator[dict[str, np.ndarray]]:
        from compressor.data import feeds_for

        for batch, _ in self._split.batches(self._batch_size):
            yield feeds_for(self._signature, batch)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._iter, None)

    def rewind(self) -> None:
        self._iter = self._gen()


def preprocess(src: Path, dst: Path) -> Path:
    """ORT's recommended pre-quantization step: shape inference and graph optimization."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        quant_pre_process(str(src), str(dst), skip_symbolic_shape=False)
    except Exception as exc:  # fall back to the plain model; record why
        log.warning("quant_pre_process failed (%s); quantizing the unprocessed model", exc)
        return src
    return dst


def quantize_static(src: Path, dst: Path, split: Any, signature: Any, config: Any, work: Path) -> dict[str, Any]:
    """Run ORT's static quantizer with a streaming reader over the calibration split."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if len(split) == 0:
        raise DataError("the calibration split is empty; give data.calibration samples.")
    model_in = preprocess(src, work / "preprocessed.onnx") if config.preprocess else src
    method = {
        "minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile, "distribution": CalibrationMethod.Distribution,
    }[config.calibration]
    extra = {"CalibMovingAverage": False}
    if config.calibration == "percentile":
        extra["CalibPercentile"] = config.percentile
    if config.symmetric_activations is not None:
        extra["ActivationSymmetric"] = config.symmetric_activations
    extra["WeightSymmetric"] = config.symmetric_weights
    reader = SplitReader(split, signature, config.calibration_batch_size)
    quantize_static(
        str(model_in), str(dst), reader,
        quant_format=QuantFormat.QDQ if config.format == "qdq" else QuantFormat.QOperator,
        op_types_to_quantize=config.op_types or None,
        per_channel=config.per_channel,
        reduce_range=config.reduce_range,
        activation_type=QuantType.QUInt8 if config.activation_type == "uint8" else QuantType.QInt8,
        weight_type=QuantType.QUInt8 if config.weight_type == "uint8" else QuantType.QInt8,
        nodes_to_exclude=config.exclude_nodes or None,
        calibrate_method=method,
        extra_options=extra,
    )
    return {"calibration_samples": len(split), "preprocessed": model_in != src}


def quantize_dynamic(src: Path, dst: Path, config: Any, work: Path) -> dict[str, Any]:
    """Run ORT's dynamic quantizer (int8 weights, activations quantized at run time)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model_in = preprocess(src, work / "preprocessed.onnx") if config.preprocess else src
    quantize_dynamic(
        str(model_in), str(dst),
        op_types_to_quantize=config.op_types or None,
        per_channel=config.per_channel,
        reduce_range=config.reduce_range,
        weight_type=QuantType.QUInt8 if config.weight_type == "uint8" else QuantType.QInt8,
        nodes_to_exclude=config.exclude_nodes or None,
        extra_options={"MatMulConstBOnly": True},
    )
    return {"preprocessed": model_in != src}
