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
from compressor.errors import ModelLoadError, RuntimeUnavailableError, first_line
from compressor.frameworks._litert import _open_interpreter, dequantize, io_name, quantize


class LiteRtSession(Session):
    """Runs a .tflite model; resizes the batch dimension, or runs fixed-batch models chunk by chunk."""

    def __init__(self, interpreter: Any) -> None:
        self._it = interpreter
        self._it.allocate_tensors()
        self._refresh()
        self.input_names = [io_name(d) for d in self._inputs]
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

    def preload(self, artifact: Any) -> None:
        from ai_edge_litert import interpreter  # noqa: F401

    def open(self, artifact: Any, device: str = "cpu", threads: int = 1, **options: Any) -> LiteRtSession:
        if device != "cpu":
            raise RuntimeUnavailableError(f"litert runs on cpu here, not '{device}'; use litert:cpu.")
        interpreter = _open_interpreter(Path(artifact.path), threads, options.get("xnnpack", True))
        try:
            return LiteRtSession(interpreter)
        except (ValueError, RuntimeError) as exc:
            first = first_line(exc, 200)
            raise ModelLoadError(f"LiteRT could not prepare '{artifact.path}': {first}.") from None
