"""ONNX -> ORT format (ONNX Runtime Mobile), and .ort import."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from compressor.artifact import BATCH, Artifact, Signature, TensorSpec
from compressor.errors import ConversionError, ModelLoadError, first_line

_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
           "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(int8)": "int8", "tensor(uint8)": "uint8",
           "tensor(bool)": "bool"}


def export_ort(artifact: Artifact, config: Any, path: Path) -> dict[str, Any]:
    """Write the ORT-format model of an ONNX artifact, optimized as onnxruntime's converter tool does.

    The NCHWc layout transform is x86-only; it is left out unless target_platform is amd64, so the
    file runs on ARM phones and boards too. Returns the operators the file needs (for a reduced build).
    """
    import onnxruntime as ort

    from backends._onnx import OnnxRuntime

    opts = OnnxRuntime().session_options(threads=1, optimization=config.optimization)
    opts.optimized_model_filepath = str(path)
    opts.add_session_config_entry("session.save_model_format", "ORT")
    disabled = [] if config.target_platform == "amd64" else ["NchwcTransformer"]
    try:
        ort.InferenceSession(str(artifact.path), opts, providers=["CPUExecutionProvider"], disabled_optimizers=disabled)
    except Exception as exc:
        first = first_line(exc, 300)
        raise ConversionError(
            f"onnx -> ort failed: {first}. Check the ONNX model loads in onnxruntime (compressor inspect), "
            f"or try optimization: basic."
        ) from None
    if not path.is_file() or path.stat().st_size == 0:
        raise ConversionError(f"onnx -> ort wrote no file at '{path}'; this onnxruntime cannot save ORT format.")
    return {"required_operators": _operators(Path(artifact.path))}


def _operators(path: Path) -> list[str]:
    from compressor.passes.optimize._onnx import load_onnx

    model = load_onnx(path, load_weights=False)
    return sorted({f"{n.domain or 'ai.onnx'}:{n.op_type}" for n in model.graph.node})


def ort_signature(path: Path, layout: str = "NCHW") -> Signature:
    """Inputs and outputs of an ORT-format (or ONNX) file, read through an InferenceSession."""
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:
        first = first_line(exc, 200)
        raise ModelLoadError(f"onnxruntime cannot load '{path}': {first}; the file is truncated or not an ORT model.") from None

    def spec(arg: Any) -> TensorSpec:
        dims = tuple(BATCH if i == 0 and not isinstance(d, int) else (d if isinstance(d, int) else str(d))
                     for i, d in enumerate(arg.shape))
        return TensorSpec(arg.name, dims, _DTYPES.get(arg.type, "float32"))

    return Signature(tuple(spec(a) for a in session.get_inputs()), tuple(spec(a) for a in session.get_outputs()), layout)


def import_ort(src: Path, dst_dir: Path) -> tuple[Path, Signature]:
    """Copy an .ort file into the store after checking that onnxruntime loads it."""
    signature = ort_signature(src)
    dst = dst_dir / "model.ort"
    shutil.copyfile(src, dst)
    return dst, signature
