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
        if options.get("kv_cache"):  # generation: the flat key/value cache signature convert.onnx exports
            return _cache_session(module, device)
        return TorchSession(module, device, artifact.signature.input_names)


def _cache_session(module: Any, device: str) -> TorchSession:
    """A session running a causal LM's flat cache form; it knows the shapes of an empty batch-1 cache."""
    from compressor.frameworks._torch_lm import cache_input_names, flat_cache_module, is_causal_lm

    if not is_causal_lm(module):
        raise RuntimeUnavailableError(
            f"{type(module).__name__} does not declare the causal-LM trait (kv_cache_layout, forward_with_cache), "
            f"so it cannot generate with a key/value cache; add the methods or measure its ONNX export."
        )
    layers, heads, head_dim = module.kv_cache_layout()
    session = TorchSession(flat_cache_module(module).to(device), device,
                           ["input_ids", "attention_mask", *cache_input_names(layers)])
    session.empty_cache_shapes = [(1, heads, 0, head_dim)] * (2 * layers)
    return session
