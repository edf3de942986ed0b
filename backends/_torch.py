"""PyTorch: load a factory + safetensors model folder and run it on CPU or CUDA."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from backends.base import Runtime, Session
from compressor.errors import RuntimeUnavailableError
from compressor.frameworks._torch import load_exported, load_module


class TorchSession(Session):
    def __init__(self, module: Any, device: str, input_names: list[str]) -> None:
        self._module = module
        self.device = device
        self.input_names = input_names

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        import torch

        args = [torch.from_numpy(np.ascontiguousarray(feeds[n])).to(self.device) for n in self.input_names]
        with torch.inference_mode():
            out = self._module(*args)
        outs = out if isinstance(out, (tuple, list)) else [out]
        return [o.detach().float().cpu().numpy() if o.is_floating_point() else o.cpu().numpy() for o in outs]

    def sync(self) -> None:
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()

    def close(self) -> None:
        self._module = None


class TorchRuntime(Runtime):
    name = "torch"
    formats = ("torch", "torch_export")
    devices = ("cpu", "cuda")
    package = "torch"
    install_hint = "pip install 'compressor[torch]'"

    def available_devices(self) -> list[str]:
        if not self.is_available():
            return []
        import torch

        return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

    def open(self, artifact: Any, device: str = "cpu", threads: int = 1, **options: Any) -> TorchSession:
        import torch

        if device not in self.available_devices():
            raise RuntimeUnavailableError(f"torch has no '{device}' device on this machine; use torch:cpu.")
        torch.set_num_threads(threads)
        if str(artifact.format) == "torch_export":
            module = load_exported(Path(artifact.path))
        else:
            module = load_module(Path(artifact.path))
        module = module.to(device)
        return TorchSession(module, device, artifact.signature.input_names)
