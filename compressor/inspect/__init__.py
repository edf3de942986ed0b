"""``compressor inspect``: what a model file is, what it holds, and how much of it is int8."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from compressor.errors import ModelLoadError
from compressor.formats import Format, detect_format

# format -> "module:function(path) -> dict"
INSPECTORS = {
    Format.ONNX: "compressor.inspect._onnx:inspect_onnx",
    Format.TORCH: "compressor.inspect._torch:inspect_torch",
    Format.TFLITE: "compressor.inspect._litert:inspect_tflite",
    Format.KERAS: "compressor.inspect._tf:inspect_keras",
}


def inspect_model(path: Path) -> dict[str, Any]:
    """A dict describing the model at ``path`` (format, size, signature, ops, int8 share...)."""
    from compressor.artifact import content_size
    from compressor.registry import load_attr

    path = Path(path)
    fmt = detect_format(path)
    if fmt not in INSPECTORS:
        raise ModelLoadError(
            f"inspect cannot read '{fmt.value}' files yet (supported: {', '.join(f.value for f in INSPECTORS)})."
        )
    info = {"path": str(path), "format": fmt.value, "size_bytes": content_size(path)}
    info.update(load_attr(INSPECTORS[fmt])(path))
    return info
