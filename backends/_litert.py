"""LiteRT (TFLite): the ai-edge-litert Interpreter, with XNNPACK, thread count and batch resizing.

A quantized model may take int8 inputs and give int8 outputs (full-integer TFLite with int8 I/O,
litert-torch's static int8). The session quantizes float feeds and dequantizes outputs with each
tensor's own scale and zero point, so callers (evaluation, parity, the timing loop) always feed
and get float arrays, as the artifact's signature says.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from backends.base import Runtime, Session
from compressor.artifact import BATCH, Signature, TensorSpec
from compressor.errors import ModelLoadError, RuntimeUnavailableError, first_line

_QUANTIZED = (np.int8, np.uint8, np.int16)


def _open_interpreter(path: Path, threads: int = 1, xnnpack: bool = True) -> Any:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    try:
        return Interpreter(model_path=str(path), num_threads=threads, experimental_op_resolver_type=resolver)
    except (ValueError, RuntimeError) as exc:
        first = first_line(exc, 200)
        raise ModelLoadError(
            f"LiteRT could not load '{path}': {first}. The file is truncated or not a TFLite model; "
            f"convert it again (convert.tflite)."
        ) from None


def _is_quantized(detail: dict[str, Any]) -> bool:
    scale, _ = detail.get("quantization", (0.0, 0))
    return detail["dtype"] in _QUANTIZED and scale != 0.0


def quantize(x: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    """Float feeds to the tensor's integer type with its scale and zero point; others just cast."""
    if not _is_quantized(detail) or not np.issubdtype(x.dtype, np.floating):
        return x.astype(detail["dtype"], copy=False)
    scale, zero = detail["quantization"]
    info = np.iinfo(detail["dtype"])
    return np.clip(np.round(x / scale + zero), info.min, info.max).astype(detail["dtype"])


def dequantize(y: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    """Integer outputs back to float32 with the tensor's scale and zero point."""
    if not _is_quantized(detail):
        return y
    scale, zero = detail["quantization"]
    return (y.astype(np.float32) - zero) * np.float32(scale)


def tflite_signature(path: Path, layout: str | None = None) -> tuple[Signature, dict[str, Any]]:
    """The model's inputs and outputs as callers feed them (floats for quantized I/O), and I/O facts.

    The second value says the I/O dtypes in the file and whether the batch dimension is fixed.
    """
    interpreter = _open_interpreter(path)

    def spec(detail: dict[str, Any]) -> TensorSpec:
        dims = list(detail.get("shape_signature", detail["shape"]))
        shape = tuple(BATCH if i == 0 else (int(d) if d >= 0 else f"dim{i}") for i, d in enumerate(dims))
        dtype = "float32" if _is_quantized(detail) else np.dtype(detail["dtype"]).name
        return TensorSpec(detail["name"], shape, dtype)

    ins, outs = interpreter.get_input_details(), interpreter.get_output_details()
    inputs = tuple(spec(d) for d in ins)
    if layout is None:
        layout = "NCHW"
        for s in inputs:  # a standalone .tflite: TFLite's convention is NHWC unless channels plainly lead
            if len(s.shape) == 4:
                layout = "NCHW" if s.shape[1] in (1, 3) and isinstance(s.shape[3], int) and s.shape[3] > 4 else "NHWC"
    facts = {
        "io_dtypes": sorted({np.dtype(d["dtype"]).name for d in ins + outs}),
        "static_batch": next((int(d["shape"][0]) for d in ins if d.get("shape_signature", [-1])[0] != -1), None),
    }
    return Signature(inputs, tuple(spec(d) for d in outs), layout), facts


class LiteRtSession(Session):
    """Runs a .tflite model; resizes the batch dimension, or runs fixed-batch models chunk by chunk."""

    def __init__(self, interpreter: Any) -> None:
        self._it = interpreter
        self._it.allocate_tensors()
        self._refresh()
        self.input_names = [d["name"] for d in self._inputs]
        sig = [d.get("shape_signature", d["shape"]) for d in self._inputs]
        # litert-torch writes a fixed batch (torch.export's sample); such models run chunk by chunk
        self.static_batch = None if all(len(s) and s[0] == -1 for s in sig) else int(self._inputs[0]["shape"][0])

    def _refresh(self) -> None:
        self._inputs = self._it.get_input_details()
        self._outputs = self._it.get_output_details()

    def _resize(self, batch: int) -> None:
        if int(self._inputs[0]["shape"][0]) == batch:
            return
        for d in self._inputs:
            self._it.resize_tensor_input(d["index"], [batch, *d["shape"][1:]])
        self._it.allocate_tensors()
        self._refresh()

    def _invoke(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        for detail, x in zip(self._inputs, arrays):
            self._it.set_tensor(detail["index"], quantize(x, detail))
        self._it.invoke()
        return [dequantize(self._it.get_tensor(d["index"]), d) for d in self._outputs]

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        arrays = [feeds[n] for n in self.input_names]
        n = len(arrays[0])
        if self.static_batch is None:
            self._resize(n)
            return self._invoke(arrays)
        b = self.static_batch
        chunks = []
        for start in range(0, n, b):
            part = [a[start:start + b] for a in arrays]
            short = b - len(part[0])
            if short:  # pad the last chunk to the fixed batch, drop the padding's outputs
                part = [np.concatenate([p, np.repeat(p[-1:], short, axis=0)]) for p in part]
            chunks.append([o[: b - short] for o in self._invoke(part)])
        return [np.concatenate(outs) for outs in zip(*chunks)]

    def close(self) -> None:
        self._it = None


class LiteRtRuntime(Runtime):
    name = "litert"
    formats = ("tflite",)
    devices = ("cpu",)
    package = "ai_edge_litert"
    install_hint = "pip install 'compressor[litert]'"

    def open(self, artifact: Any, device: str = "cpu", threads: int = 1, **options: Any) -> LiteRtSession:
        if device != "cpu":
            raise RuntimeUnavailableError(f"litert runs on cpu here, not '{device}'; use litert:cpu.")
        interpreter = _open_interpreter(Path(artifact.path), threads, options.get("xnnpack", True))
        try:
            return LiteRtSession(interpreter)
        except (ValueError, RuntimeError) as exc:
            first = first_line(exc, 200)
            raise ModelLoadError(f"LiteRT could not prepare '{artifact.path}': {first}.") from None
