"""PyTorch quantization calls (the torch side of the quantize.torch.* passes)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compressor.frameworks._torch import apply_dynamic

if TYPE_CHECKING:
    from compressor.artifact import Artifact
    from compressor.passes.quantize.torch_dynamic import TorchDynamicQuantConfig


def count_layers(module: Any, layers: list[str]) -> int:
    import torch

    return sum(isinstance(m, tuple(getattr(torch.nn, n) for n in layers)) for m in module.modules())


def write_dynamic(artifact: Artifact, config: TorchDynamicQuantConfig, out_dir: Path) -> tuple[Path, dict[str, Any]]:
    """A torch model folder holding the float weights plus the dynamic-quantization recipe.

    torch.ao's dynamic Linear keeps its int8 weights in packed parameters that safetensors cannot
    hold and torch.export cannot serialize, so the folder stores what makes them: the float
    state and the deterministic recipe, replayed by ``backends._torch.load_module``.
    """
    import shutil

    from compressor.frameworks._torch import MODEL_JSON, load_module

    src = Path(artifact.path)
    module = load_module(src)
    found = count_layers(module, config.layers)
    quantized = apply_dynamic(module, config.layers, config.dtype)
    out = out_dir / "model"
    shutil.copytree(src, out)
    desc = json.loads((out / MODEL_JSON).read_text())
    desc["post_load"] = [*desc.get("post_load", []), {"name": "quantize_dynamic",
                                                      "kwargs": {"layers": config.layers, "dtype": config.dtype}}]
    (out / MODEL_JSON).write_text(json.dumps(desc, sort_keys=True, indent=2))
    names = sorted({type(m).__module__ + "." + type(m).__name__ for m in quantized.modules()
                    if "quantized" in type(m).__module__})
    return out, {"layers_quantized": found, "module_types": names}
