"""ONNX Runtime: one runtime, with the execution provider chosen by device."""
from __future__ import annotations

from typing import Any

import numpy as np

from backends.base import Runtime, Session
from compressor.errors import ModelLoadError, RuntimeUnavailableError, first_line
from compressor.frameworks._onnx import session_options

PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
    "openvino": ["OpenVINOExecutionProvider", "CPUExecutionProvider"],
}


class OnnxSession(Session):
    def __init__(self, session: Any, device: str) -> None:
        self._session = session
        self.device = device
        self.input_names = [i.name for i in session.get_inputs()]
        self.providers = session.get_providers()

    @property
    def inference_session(self) -> Any:
        """The onnxruntime InferenceSession this Session runs (a benchmark times it bare)."""
        return self._session

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self._session.run(None, feeds)

    def close(self) -> None:
        self._session = None


class OnnxRuntime(Runtime):
    name = "onnxruntime"
    formats = ("onnx", "ort")
    devices = tuple(PROVIDERS)
    package = "onnxruntime"
    install_hint = "pip install 'compressor[onnx]'"

    def available_devices(self) -> list[str]:
        if not self.is_available():
            return []
        import onnxruntime as ort

        have = set(ort.get_available_providers())
        return [d for d, providers in PROVIDERS.items() if providers[0] in have]

    def open(self, artifact: Any, device: str = "cpu", threads: int = 1, **options: Any) -> OnnxSession:
        import onnxruntime as ort

        if device not in self.available_devices():
            raise RuntimeUnavailableError(
                f"onnxruntime has no '{device}' provider here (available: "
                f"{', '.join(ort.get_available_providers())}); install onnxruntime-gpu or use onnxruntime:cpu."
            )
        opts = session_options(threads, options.get("optimization", "all"), options.get("profile", False))
        try:
            session = ort.InferenceSession(str(artifact.path), opts, providers=PROVIDERS[device])
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph/... types
            first = first_line(exc, 300)
            raise ModelLoadError(
                f"onnxruntime could not load '{artifact.path}': {first}. Check that the file is a "
                f"complete, valid model (re-export it)."
            ) from None
        return OnnxSession(session, device)
