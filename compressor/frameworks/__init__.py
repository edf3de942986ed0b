"""One home per framework: loading, saving, signatures, sample inputs and graph facts.

``FORMATS`` is the one table keyed by format: the file suffix a run folder gives the format, the
runtime that evaluates it by default, and the "module:function" strings of its importer, its
inspector and its int8-coverage reader. The strings are imported only when used, so reading the
table loads no framework.
"""
from __future__ import annotations

from dataclasses import dataclass

from compressor.errors import ModelLoadError
from compressor.formats import Format


@dataclass(frozen=True)
class FormatInfo:
    """What the toolchain knows how to do with one format, as lazy "module:function" strings.

    importer(src, dst_dir) -> (model path in dst_dir, Signature[, meta]); inspector(path) -> dict;
    coverage(path, input_shapes) -> dict of int8 shares.
    """

    suffix: str = ""
    runtime: str | None = None
    importer: str | None = None
    inspector: str | None = None
    coverage: str | None = None


_F = "compressor.frameworks."
FORMATS: dict[Format, FormatInfo] = {
    Format.ONNX: FormatInfo(".onnx", "onnxruntime", _F + "_onnx:import_onnx", _F + "_onnx_graph:inspect_onnx",
                            _F + "_onnx_graph:coverage"),
    Format.ORT: FormatInfo(".ort", "onnxruntime", _F + "_onnx:import_ort"),
    Format.TORCH: FormatInfo("", "torch", None, _F + "_torch:inspect_torch"),
    Format.TORCH_EXPORT: FormatInfo(".pt2", "torch"),
    Format.KERAS: FormatInfo(".keras", "tensorflow", _F + "_tf:import_keras", _F + "_tf:inspect_keras"),
    Format.SAVED_MODEL: FormatInfo("", "tensorflow", _F + "_tf:import_saved_model"),
    Format.TFLITE: FormatInfo(".tflite", "litert", _F + "_litert:import_tflite", _F + "_litert:inspect_tflite"),
}


def format_info(fmt: Format | str) -> FormatInfo:
    """The table row of ``fmt`` (a Format or its value)."""
    return FORMATS[Format(fmt)]


def handled_by(role: str) -> list[Format]:
    """The formats whose row names a ``role`` ('importer', 'inspector', 'coverage')."""
    return [f for f, info in FORMATS.items() if getattr(info, role)]


def function_for(fmt: Format, role: str, doing: str, fix: str = "") -> object:
    """Import and return the ``role`` function of ``fmt``; a clear error when the format has none."""
    from compressor.code import load_attr

    spec = getattr(FORMATS[fmt], role)
    if spec is None:
        allowed = ", ".join(f.value for f in handled_by(role))
        raise ModelLoadError(f"{doing} cannot read a '{fmt.value}' model (it reads {allowed}){'; ' + fix if fix else ''}.")
    return load_attr(spec)
