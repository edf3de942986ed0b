"""ONNX facts: loading with clear errors, signatures of .onnx and .ort files, session options, ORT offline optimization."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from compressor.artifact import BATCH, Signature, TensorSpec
from compressor.errors import ModelLoadError, first_line


def load_onnx(path: Path, load_weights: bool = True) -> Any:
    """Load and check an ONNX model; a truncated or foreign file is a ModelLoadError."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=load_weights)
    except Exception as exc:
        raise ModelLoadError(
            f"'{path}' is not a readable ONNX model ({first_line(exc, 160)}); "
            f"re-export it, or check that the file was copied completely."
        ) from None
    if not model.graph.node:
        raise ModelLoadError(f"'{path}' parsed as ONNX but has no graph nodes; it is empty or not an ONNX model.")
    try:
        onnx.checker.check_model(model) if load_weights else None
    except Exception as exc:
        raise ModelLoadError(f"'{path}' fails the ONNX checker: {first_line(exc, 200)}; re-export it.") from None
    return model


def ort_optimize(src: Path, dst: Path, level: str, disabled_optimizers: list[str] | None = None) -> None:
    """Write ONNX Runtime's offline-optimized graph of ``src`` to ``dst``."""
    import onnxruntime as ort

    opts = session_options(threads=1, optimization=level)
    opts.optimized_model_filepath = str(dst)
    kwargs = {"disabled_optimizers": disabled_optimizers} if disabled_optimizers else {}
    ort.InferenceSession(str(src), opts, providers=["CPUExecutionProvider"], **kwargs)


ORT_DTYPES = {
    "tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
    "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(int8)": "int8",
    "tensor(uint8)": "uint8", "tensor(bool)": "bool",
}


def symbolic_dims(dims: list[int | str | None], batch_axis: int = 0) -> tuple[int | str, ...]:
    """A signature's dims: the batch axis, when symbolic, is "batch"; other symbolic dims keep their
    name, or are called "dim_<i>" when unnamed (never "batch": only the declared batch axis is)."""
    out: list[int | str] = []
    for i, d in enumerate(dims):
        if isinstance(d, int):
            out.append(d)
        elif i == batch_axis:
            out.append(BATCH)
        else:
            out.append(d if isinstance(d, str) and d else f"dim_{i}")
    return tuple(out)


def onnx_signature(path: Path, layout: str = "NCHW", batch_axes: dict[str, int] | None = None) -> Signature:
    """Read an ONNX file's input/output names, shapes (symbolic dims by name) and dtypes.

    ``batch_axes`` gives the batch axis of inputs or outputs whose batch is not first (default 0).
    """
    import onnx

    model = load_onnx(path, load_weights=False)
    init = {i.name for i in model.graph.initializer}
    axes = batch_axes or {}

    def spec(value: Any) -> TensorSpec:
        t = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else d.dim_param for d in t.shape.dim]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name
        return TensorSpec(value.name, symbolic_dims(dims, axes.get(value.name, 0)), dtype)

    return Signature(
        inputs=tuple(spec(v) for v in model.graph.input if v.name not in init),
        outputs=tuple(spec(v) for v in model.graph.output),
        layout=layout,
    )


def ort_signature(path: Path, layout: str = "NCHW") -> Signature:
    """Inputs and outputs of an ORT-format (or ONNX) file, read through an InferenceSession."""
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:
        first = first_line(exc, 200)
        raise ModelLoadError(f"onnxruntime cannot load '{path}': {first}; the file is truncated or not an ORT model.") from None

    def spec(arg: Any) -> TensorSpec:
        dims = [d if isinstance(d, int) else (d or "") for d in arg.shape]  # ORT gives None for unnamed dims
        return TensorSpec(arg.name, symbolic_dims(dims), ORT_DTYPES.get(arg.type, "float32"))

    return Signature(tuple(spec(a) for a in session.get_inputs()), tuple(spec(a) for a in session.get_outputs()), layout)


def import_ort(src: Path, dst_dir: Path) -> tuple[Path, Signature]:
    """Copy an .ort file into the store after checking that onnxruntime loads it."""
    signature = ort_signature(src)
    dst = dst_dir / "model.ort"
    shutil.copyfile(src, dst)
    return dst, signature


def import_onnx(src: Path, dst_dir: Path) -> tuple[Path, Signature]:
    load_onnx(src)  # raises a clear ModelLoadError for a corrupt file
    dst = dst_dir / "model.onnx"
    shutil.copyfile(src, dst)
    return dst, onnx_signature(dst)


def session_options(threads: int, optimization: str = "all", profile: bool = False) -> Any:
    """ONNX Runtime session options as the toolchain uses them everywhere: sequential, ``threads`` intra-op."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[optimization]
    opts.log_severity_level = 3
    if profile:
        opts.enable_profiling = True
    return opts


def set_onnxruntime_log_severity(level: int) -> None:
    """ONNX Runtime's default logger severity (0 verbose .. 4 fatal; 2, warnings, is its default), for
    the C++ lines a session without its own level prints; nothing when onnxruntime is not installed."""
    import importlib.util

    if importlib.util.find_spec("onnxruntime") is None:
        return
    import onnxruntime

    onnxruntime.set_default_logger_severity(level)
