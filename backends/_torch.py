"""PyTorch: load a factory + safetensors model folder and run it on CPU or CUDA."""
from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from backends.base import Runtime, Session, repeat
from compressor.errors import RuntimeUnavailableError
from compressor.frameworks._torch import load_exported, load_module

_FLOAT_COMPUTE = {"addmm", "mm", "bmm", "baddbmm", "matmul", "linear", "einsum", "lstm", "gru", "rnn_tanh", "rnn_relu",
                  "_scaled_dot_product_flash_attention_for_cpu", "scaled_dot_product_attention"}


def op_kind(op: str) -> str:
    """What a torch operator does, for a profile: qdq, int8_compute, float_compute or other."""
    namespace, _, name = op.rpartition("::")
    if "quantize_per" in name or name.startswith("dequantize"):
        return "qdq"
    if namespace in ("quantized", "onednn") or name in ("_int_mm", "_weight_int8pack_mm"):
        return "int8_compute"
    return "float_compute" if "conv" in name or name in _FLOAT_COMPUTE else "other"


def _shape_tag(shapes: list[Any]) -> str:
    first = next((s for s in shapes or [] if s), None)
    return "[" + "x".join(str(d) for d in first) + "]" if first else ""


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
    profiler = "torch.profiler"

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

    def profile_ops(self, artifact: Any, device: str, threads: int, feeds: dict[str, np.ndarray],
                    warmup_runs: int, runs: int, max_seconds: float) -> tuple[list[dict[str, Any]], int]:
        """torch.profiler's self time per operator and input shape (a "node": eager torch has no graph
        node names), over the runs after the warm-up."""
        from torch.profiler import ProfilerActivity, profile

        session = self.open(artifact, device, threads)
        run = partial(session.run, feeds)
        repeat(run, warmup_runs, 0, max_seconds)
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
        with profile(activities=activities, record_shapes=True) as prof:
            _, done = repeat(run, 0, runs, max_seconds)
        session.close()
        per_node: dict[str, list[Any]] = {}
        for e in prof.key_averages(group_by_input_shape=True):
            us = e.self_cpu_time_total + (getattr(e, "self_device_time_total", 0) if device == "cuda" else 0)
            if us > 0:
                per_node.setdefault(f"{e.key}{_shape_tag(e.input_shapes)}", [e.key, 0.0])[1] += us
        rows = [{"node": node, "op": op, "kind": op_kind(op), "ms": us / done / 1000.0}
                for node, (op, us) in per_node.items()]
        return rows, done

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
