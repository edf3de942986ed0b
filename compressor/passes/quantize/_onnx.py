"""ONNX Runtime quantizer calls (the ONNX side of the quantize.onnx.* passes).

The technique modules (static.py, fallback.py, ...) decide what to quantize; these functions
apply it with ONNX Runtime's quantization tools and check the inputs those tools would silently
accept (misspelled node names, data of the wrong shape or dtype).
"""
from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator
from logging.handlers import BufferingHandler
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from compressor.errors import DataError, PassError, did_you_mean, first_line

if TYPE_CHECKING:
    from compressor.artifact import Signature
    from compressor.data import Split
    from compressor.passes.quantize.onnx_dynamic import DynamicQuantConfig
    from compressor.passes.quantize.onnx_fp16 import Fp16Config
    from compressor.passes.quantize.onnx_static import StaticQuantConfig

log = logging.getLogger(__name__)

# op types ORT's static / dynamic quantizers can turn into integer kernels
QUANTIZABLE_OPS = frozenset({"Conv", "MatMul", "Gemm", "ConvTranspose", "Attention", "Gather", "LSTM"})
# the compute nodes the accuracy-aware fallback may keep in float
COMPUTE_OPS = frozenset({"Conv", "ConvTranspose", "MatMul", "Gemm"})


def graph_nodes(path: Path) -> list[Any]:
    from compressor.frameworks._onnx import load_onnx

    return list(load_onnx(path, load_weights=False).graph.node)


def check_node_names(path: Path, names: list[str], pass_name: str, what: str = "exclude_nodes") -> None:
    """Every node to exclude must exist: a misspelled name is never silently ignored."""
    present = {n.name for n in graph_nodes(path)}
    for name in names:
        if name not in present:
            raise PassError(
                f"pass '{pass_name}': {what} names '{name}', which is not a node of the model."
                f"{did_you_mean(name, present)} Run 'compressor inspect' on the parent to see node names."
            )


def check_op_types(path: Path, op_types: list[str] | None, pass_name: str) -> None:
    """Every requested op type must occur in the graph, and something must be quantizable."""
    present = {n.op_type for n in graph_nodes(path)}
    if not present & QUANTIZABLE_OPS:
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


def check_calibration_data(split: Any, signature: Any, pass_name: str) -> None:
    """Calibration arrays must fit the model's inputs in shape and kind of dtype (float vs integer).

    ``feeds_for`` would cast token ids to float or images to int64 without a word; a calibration
    run on such data gives meaningless ranges, so it is refused here.
    """
    from compressor.data import feeds_for

    sample = split.take(1).inputs
    specs = {s.name: s for s in signature.inputs}
    arrays = sample if len(sample) > 1 or len(specs) > 1 else {next(iter(specs)): next(iter(sample.values()))}
    for name, arr in arrays.items():
        spec = specs.get(name)
        if spec is None:
            continue
        want_float = np.dtype(spec.dtype).kind == "f"
        if arr.dtype.kind in "fc" and not want_float or arr.dtype.kind in "iub" and want_float:
            raise DataError(
                f"pass '{pass_name}': calibration input '{name}' is {arr.dtype} but the model expects "
                f"{spec.dtype}; give {'floating-point' if want_float else 'integer'} data for it."
            )
    try:
        feeds_for(signature, sample, getattr(split, "feeding", None))  # with the pipeline's constants
    except DataError as exc:
        raise DataError(f"pass '{pass_name}': calibration data does not fit the model: {exc}") from None


class SplitReader:
    """A CalibrationDataReader streaming batches of the calibration split, one at a time.

    It supports ORT's strided calibration (``__len__`` and ``set_range``): the calibrator is fed
    one batch per ``collect_data`` call, folds it into its running ranges or histograms and drops
    it, so memory does not grow with the number of samples.
    """

    def __init__(self, split: Split, signature: Signature, batch_size: int = 32) -> None:
        self._split = split
        self._signature = signature
        self._batch_size = batch_size
        self._start, self._stop = 0, len(self)
        self._iter: Iterator[dict[str, np.ndarray]] | None = None
        self.rewind()

    def __len__(self) -> int:
        return -(-len(self._split) // self._batch_size)

    def _gen(self) -> Iterator[dict[str, np.ndarray]]:
        from compressor.data import feeds_for

        for index, (batch, _) in enumerate(self._split.batches(self._batch_size)):
            if index >= self._stop:
                return
            if index >= self._start:
                yield feeds_for(self._signature, batch, self._split.feeding)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._iter, None)

    def rewind(self) -> None:
        self._iter = self._gen()

    def __iter__(self) -> SplitReader:  # CalibrationDataReader's protocol (GPTQ iterates it)
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        batch = self.get_next()
        if batch is None:
            raise StopIteration
        return batch

    def __getstate__(self) -> dict[str, Any]:  # GPTQ deep-copies the reader; generators don't copy
        return {k: v for k, v in self.__dict__.items() if k != "_iter"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.rewind()

    def set_range(self, start_index: int, end_index: int) -> None:
        """Restrict the reader to batches [start_index, end_index) and rewind it."""
        self._start, self._stop = start_index, end_index
        self.rewind()


def preprocess(src: Path, dst: Path, enabled: bool = True) -> tuple[Path, dict[str, Any]]:
    """ORT's recommended pre-quantization step (shape inference, graph optimization): the model to
    quantize and the ledger's record of the step (whether it ran, its settings, why not)."""
    if not enabled:
        return src, {"ran": False, "why": "preprocess: false in the pass's config"}
    from onnxruntime.quantization.shape_inference import quant_pre_process

    attempts = ({"skip_symbolic_shape": False}, {"skip_symbolic_shape": False, "auto_merge": True},
                {"skip_symbolic_shape": True})
    failures = []
    for kwargs in attempts:  # transformer exports need auto_merge; some graphs need no symbolic pass
        try:
            # ORT's symbolic shape inference dumps 'sym_shape_infer_temp.onnx' (plus external
            # data) into the current folder when it fails: run it from the scratch folder.
            with _quiet(), _ort_errors() as errors, contextlib.chdir(dst.parent):
                quant_pre_process(str(src.resolve()), str(dst.resolve()), **kwargs)
        except Exception as exc:  # record why, try the next setting
            failures.append(f"{kwargs}: {first_line(exc, 200)}")
            log.info("quant_pre_process failed: %s", failures[-1])
            continue
        record: dict[str, Any] = {"ran": True, "settings": kwargs}
        if errors:  # ORT logs a failed graph optimization and carries on with the unoptimized graph
            record["optimized"], record["why"] = False, errors[0]
        return dst, record
    log.warning("quant_pre_process failed; quantizing the unprocessed model")
    return src, {"ran": False, "why": "onnxruntime's quant_pre_process failed: " + "; ".join(failures)}


@contextlib.contextmanager
def _ort_errors() -> Iterator[list[str]]:
    """The first lines of the errors quant_pre_process logs without raising (filled on exit)."""
    errors: list[str] = []
    handler, logger = BufferingHandler(100), logging.getLogger("onnxruntime.quantization.shape_inference")
    handler.setLevel(logging.ERROR)
    logger.addHandler(handler)
    try:
        yield errors
    finally:
        logger.removeHandler(handler)
        errors += [first_line(r.getMessage(), 200) for r in handler.buffer]


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """ORT's calibrators and pre-processing print to stdout on every batch; send it to the log."""
    with contextlib.redirect_stdout(io.StringIO()) as captured:
        yield
    if captured.getvalue().strip():
        log.debug("onnxruntime quantization output: %s", captured.getvalue()[:2000])


def check_excluded_survive(model_in: Path, names: list[str], pass_name: str) -> None:
    """A name to exclude that pre-processing fused away would be ignored by ORT: refuse it."""
    present = {n.name for n in graph_nodes(model_in)}
    lost = [n for n in names if n not in present]
    if lost:
        raise PassError(
            f"pass '{pass_name}': nodes {lost} were fused or renamed by ORT's pre-processing, so they "
            f"cannot be kept in float; set preprocess: false, or exclude the fused node instead."
        )


def compute_nodes(path: Path, op_types: list[str] | None) -> list[tuple[str, str]]:
    """(name, op type) of the compute nodes the quantizer would touch, in graph order."""
    allowed = COMPUTE_OPS & set(op_types) if op_types else COMPUTE_OPS
    return [(n.name, n.op_type) for n in graph_nodes(path) if n.op_type in allowed and n.name]


def static_options(config: StaticQuantConfig) -> dict[str, Any]:
    """quantize_static keyword arguments for a StaticQuantConfig, less model, reader and exclusions."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType

    method = {
        "minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile, "distribution": CalibrationMethod.Distribution,
    }[config.calibration]
    # CalibStridedMinMax: feed the calibrator one batch per collect_data call (any method, despite
    # the name), so ORT never holds more than one batch of intermediate outputs.
    extra: dict[str, Any] = {"CalibMovingAverage": False, "CalibStridedMinMax": 1}
    if config.calibration == "percentile":
        extra["CalibPercentile"] = config.percentile
    if config.symmetric_activations is not None:
        extra["ActivationSymmetric"] = config.symmetric_activations
        extra["CalibTensorRangeSymmetric"] = config.symmetric_activations
    extra["WeightSymmetric"] = config.symmetric_weights
    qtype = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}
    return dict(
        quant_format=QuantFormat.QDQ if config.format == "qdq" else QuantFormat.QOperator,
        op_types_to_quantize=config.op_types or None,
        per_channel=config.per_channel,
        reduce_range=config.reduce_range,
        activation_type=qtype[config.activation_type],
        weight_type=qtype[config.weight_type],
        calibrate_method=method,
        extra_options=extra,
    )


class StaticQuantizer:
    """Calibrates once, then quantizes the (pre-processed) model with any set of float nodes.

    The calibrated ranges are kept in ORT's calibration cache file, so the accuracy-aware
    fallback can re-quantize with different exclusions without calibrating again.
    """

    def __init__(self, src: Path, split: Any, signature: Any, config: Any, work: Path, pass_name: str) -> None:
        if len(split) == 0:
            raise DataError(f"pass '{pass_name}': the calibration split is empty; give data.calibration samples.")
        check_calibration_data(split, signature, pass_name)
        self.split, self.signature, self.config, self.pass_name = split, signature, config, pass_name
        self.model_in, self.preprocessed = preprocess(src, work / "preprocessed.onnx", config.preprocess)
        check_excluded_survive(self.model_in, list(config.exclude_nodes), pass_name)
        self.cache = work / "calibration.json"
        self.options = static_options(config)
        self.kept_for_speed = small_reduction_convs(self.model_in, config.min_int8_reduction, config.exclude_nodes)

    def quantize(self, dst: Path, exclude: list[str] | None = None) -> Path:
        """Write the int8 model to ``dst`` with ``exclude`` (plus the configured exclusions) in float."""
        from onnxruntime.quantization import quantize_static

        speed = [n for item in self.kept_for_speed for n in item["nodes"]]
        nodes = list(dict.fromkeys([*self.config.exclude_nodes, *speed, *(exclude or [])]))
        reader = SplitReader(self.split, self.signature, self.config.calibration_batch_size)
        try:
            with _quiet():
                quantize_static(str(self.model_in), str(dst), reader, nodes_to_exclude=nodes or None,
                                calibration_cache_path=str(self.cache), **self.options)
        except (ValueError, RuntimeError) as exc:
            detail = first_line(exc, 300)
            raise PassError(f"pass '{self.pass_name}': onnxruntime's quantizer failed: {detail}.") from None
        return dst

    def report(self) -> dict[str, Any]:
        report: dict[str, Any] = {"calibration_samples": len(self.split), "preprocess": self.preprocessed}
        if self.kept_for_speed:
            report["kept_float_for_speed"] = self.kept_for_speed
        return report


# ops that commute with quantization (monotonic or pass-through): a float conv's chain of them
# stays float with it, else ORT runs them on uint8 in NCHW layout, which is slow
_FLOAT_CHAIN_OPS = {"Relu", "Clip", "MaxPool", "LeakyRelu"}


def small_reduction_convs(path: Path, min_reduction: int, already: list[str]) -> list[dict[str, Any]]:
    """Ungrouped Conv nodes whose dot-product length is under ``min_reduction``, each with the
    Relu / Clip / MaxPool chain that follows it: the nodes to keep in float for speed."""
    if min_reduction <= 0:
        return []
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    shapes = {i.name: list(i.dims) for i in model.graph.initializer}
    consumers: dict[str, list[Any]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    found = []
    for node in model.graph.node:
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        w = shapes.get(node.input[1]) if node.op_type == "Conv" and len(node.input) > 1 else None
        if not w or len(w) < 3 or group != 1 or node.name in already:
            continue
        reduction = int(w[1]) * int(np.prod(w[2:]))
        if reduction >= min_reduction:
            continue
        chain, current = [node.name], node
        while len(consumers.get(current.output[0], [])) == 1 and consumers[current.output[0]][0].op_type in _FLOAT_CHAIN_OPS:
            current = consumers[current.output[0]][0]
            chain.append(current.name)
        found.append({"nodes": chain, "reduction": reduction,
                      "why": f"dot products of {reduction} < min_int8_reduction {min_reduction}: float is faster"})
    return found


def quantize_dynamic(src: Path, dst: Path, config: DynamicQuantConfig, work: Path) -> dict[str, Any]:
    """Run ORT's dynamic quantizer (int8 weights, activations quantized at run time)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model_in, preprocessed = preprocess(src, work / "preprocessed.onnx", config.preprocess)
    with _quiet():
        quantize_dynamic(
            str(model_in), str(dst),
            op_types_to_quantize=config.op_types or None,
            per_channel=config.per_channel,
            reduce_range=config.reduce_range,
            weight_type=QuantType.QUInt8 if config.weight_type == "uint8" else QuantType.QInt8,
            nodes_to_exclude=config.exclude_nodes or None,
            extra_options={"MatMulConstBOnly": True},
        )
    return {"preprocess": preprocessed}


def convert_fp16(src: Path, dst: Path, config: Fp16Config) -> dict[str, Any]:
    """float16 weights and compute; float32 inputs and outputs kept (Casts at the edges)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(src))
    half = convert_float_to_float16(model, keep_io_types=config.keep_io_types,
                                    op_block_list=list(config.keep_float_ops) or None,
                                    node_block_list=list(config.exclude_nodes) or None)
    onnx.save(half, str(dst))
    casts = sum(n.op_type == "Cast" for n in half.graph.node)
    return {"cast_nodes": casts, "float_ops_kept": list(config.keep_float_ops)}
