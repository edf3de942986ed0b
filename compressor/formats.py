"""What a model file is."""
from __future__ import annotations

import enum
from pathlib import Path

from compressor.errors import ModelLoadError


class Format(str, enum.Enum):
    """A model's on-disk format. The value is what pipeline files and results.json say."""

    TORCH = "torch"                # folder: model.json (factory + kwargs) + weights.safetensors
    TORCH_EXPORT = "torch_export"  # .pt2
    KERAS = "keras"                # .keras / .h5
    SAVED_MODEL = "saved_model"    # folder with saved_model.pb
    ONNX = "onnx"
    TFLITE = "tflite"
    ORT = "ort"                    # ONNX Runtime mobile format

    def __str__(self) -> str:
        return self.value


_SUFFIXES = {
    ".onnx": Format.ONNX,
    ".tflite": Format.TFLITE,
    ".ort": Format.ORT,
    ".pt2": Format.TORCH_EXPORT,
    ".keras": Format.KERAS,
    ".h5": Format.KERAS,
}


def detect_format(path: Path) -> Format:
    """Tell a model's format from its path; raise a clear error when it cannot be told."""
    if not path.exists():
        raise ModelLoadError(
            f"model file '{path}' does not exist; check the path (relative paths are resolved "
            f"against the pipeline file's folder)."
        )
    if path.is_dir():
        if (path / "saved_model.pb").exists():
            return Format.SAVED_MODEL
        if (path / "model.json").exists():
            return Format.TORCH
        raise ModelLoadError(
            f"folder '{path}' is neither a SavedModel (no saved_model.pb) nor a torch model "
            f"folder (no model.json); point 'model.path' at a model file or folder."
        )
    fmt = _SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise ModelLoadError(
            f"cannot tell the format of '{path}' from its suffix '{path.suffix}'; allowed: "
            f"{', '.join(sorted(_SUFFIXES))}, a SavedModel folder, or model.factory + weights."
        )
    return fmt
