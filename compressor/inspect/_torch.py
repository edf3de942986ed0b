"""Reading a torch model folder: parameters, sparsity, layer histogram."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any


def inspect_torch(path: Path) -> dict[str, Any]:
    from backends._torch import load_module

    module = load_module(path)
    params = list(module.named_parameters())
    weights = [p for n, p in params if n.endswith("weight") and p.dim() >= 2]
    zeros = sum(int((w == 0).sum()) for w in weights)
    total = sum(w.numel() for w in weights)
    return {
        "parameters": sum(p.numel() for _, p in params),
        "weight_sparsity": round(zeros / total, 4) if total else 0.0,
        "layers": dict(Counter(type(m).__name__ for m in module.modules() if not list(m.children())).most_common()),
    }
