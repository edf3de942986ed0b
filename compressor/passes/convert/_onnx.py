"""ONNX -> ORT format (ONNX Runtime Mobile), and .ort import."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from compressor.artifact import Artifact
from compressor.errors import ConversionError, first_line

if TYPE_CHECKING:
    from compressor.passes.convert.to_ort import ConvertOrtConfig


def export_ort(artifact: Artifact, config: ConvertOrtConfig, path: Path) -> dict[str, Any]:
    """Write the ORT-format model of an ONNX artifact, optimized as onnxruntime's converter tool does.

    The NCHWc layout transform is x86-only; it is left out unless target_platform is amd64, so the
    file runs on ARM phones and boards too. Returns the operators the file needs (for a reduced build).
    """
    import onnxruntime as ort

    from compressor.frameworks._onnx import session_options

    opts = session_options(threads=1, optimization=config.optimization)
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
    from compressor.frameworks._onnx import load_onnx

    model = load_onnx(path, load_weights=False)
    return sorted({f"{n.domain or 'ai.onnx'}:{n.op_type}" for n in model.graph.node})


