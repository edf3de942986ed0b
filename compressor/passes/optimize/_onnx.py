"""ONNX helpers shared by the ONNX passes: loading with clear errors, ORT offline optimization."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from compressor.errors import ModelLoadError, first_line


def load_onnx(path: Path, load_weights: bool = True) -> Any:
    """Load and check an ONNX model; a truncated or foreign file is a ModelLoadError."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=load_weights)
    except Exception as exc:
        raise ModelLoadError(
            f"'{path}' is not a readable ONNX model ({type(exc).__name__}: {str(exc)[:120]}); "
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

    from backends._onnx import OnnxRuntime

    opts = OnnxRuntime().session_options(threads=1, optimization=level)
    opts.optimized_model_filepath = str(dst)
    kwargs = {"disabled_optimizers": disabled_optimizers} if disabled_optimizers else {}
    ort.InferenceSession(str(src), opts, providers=["CPUExecutionProvider"], **kwargs)
