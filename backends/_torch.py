"""PyTorch: load a factory + safetensors model folder and run it on CPU or CUDA."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from backends.base import Runtime, Session
from compressor.errors import ModelLoadError, RuntimeUnavailableError, first_line

MODEL_JSON = "model.json"
WEIGHTS = "weights.safetensors"


def build_module(factory: str, kwargs: dict[str, Any]) -> Any:
    """Call the factory (code from the project, never from the model file)."""
    from compressor.registry import load_attr

    return load_attr(factory)(**kwargs)


# post-load rewrites a torch model folder may name in model.json ("post_load": [{"name", "kwargs"}]):
# a quantized module whose state is not plain tensors is stored as its float weights plus the
# deterministic recipe that quantizes them again on load
POST_LOAD = {"quantize_dynamic": "compressor.passes.quantize._torch:apply_dynamic"}


def load_module(path: Path) -> Any:
    """Rebuild the nn.Module stored in a torch model folder, in eval mode."""
    from safetensors.torch import load_file

    from compressor.registry import load_attr

    try:
        desc = json.loads((path / MODEL_JSON).read_text())
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"torch model folder '{path}' has no readable {MODEL_JSON} ({exc}).") from None
    module = build_module(desc["factory"], desc.get("kwargs", {}))
    try:
        state = load_file(str(path / WEIGHTS))
        module.load_state_dict(state, strict=True)
    except Exception as exc:
        raise ModelLoadError(
            f"weights in '{path / WEIGHTS}' do not fit factory '{desc['factory']}': "
            f"{first_line(exc, 300)}. Check model.factory and model.kwargs."
        ) from None
    for step in desc.get("post_load", []):  # deterministic rewrites, by name from a fixed table
        if step.get("name") not in POST_LOAD:
            raise ModelLoadError(
                f"torch model folder '{path}' asks for post-load step {step.get('name')!r}; known: "
                f"{', '.join(POST_LOAD)}. It was written by a newer compressor."
            )
        module = load_attr(POST_LOAD[step["name"]])(module, **step.get("kwargs", {}))
    return module.eval()


def load_exported(path: Path) -> Any:
    """The module of a torch.export program (.pt2), with the quantize/dequantize ops it may name registered."""
    import torch

    # a PT2E-quantized program calls torch.ops.quantized_decomposed.*, which exist only once this module
    # is imported (torchao's PT2E imports it too); deserializing such a program fails without them
    try:
        import torch.ao.quantization.fx._decomposed  # noqa: F401
    except ImportError:
        pass
    try:
        return torch.export.load(str(path)).module()
    except Exception as exc:
        detail = first_line(exc, 300)
        raise ModelLoadError(f"cannot load exported program '{path}': {detail}") from None


def save_module(module: Any, factory: str, kwargs: dict[str, Any], out_dir: Path) -> Path:
    """Write a torch model folder: model.json (factory + kwargs) and weights.safetensors."""
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}
    save_file(state, str(out_dir / WEIGHTS))
    (out_dir / MODEL_JSON).write_text(json.dumps({"factory": factory, "kwargs": kwargs}, sort_keys=True, indent=2))
    return out_dir


def save_exported(module: Any, signature: Any, path: Path) -> Path:
    """Write ``module`` as a torch.export program (.pt2) with a symbolic batch dimension."""
    import torch

    from compressor.passes.convert._torch import sample_inputs

    module = module.eval()
    args = sample_inputs(signature, batch=4)
    batch = torch.export.Dim("batch", min=1, max=65536)
    try:
        program = torch.export.export(module, args, dynamic_shapes=tuple({0: batch} for _ in args))
    except Exception as exc:
        detail = first_line(exc, 300)
        raise ModelLoadError(f"torch.export could not capture the model ({detail}); save it as a factory instead.") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.export.save(program, str(path))
    return path


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
