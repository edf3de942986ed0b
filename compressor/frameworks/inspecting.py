"""``compressor inspect``: what a model file is, what it holds, and how much of it is int8."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from compressor.formats import detect_format
from compressor.frameworks import function_for


def inspect_model(path: Path) -> dict[str, Any]:
    """A dict describing the model at ``path`` (format, size, signature, ops, int8 share...)."""
    from compressor.artifact import content_size

    path = Path(path)
    fmt = detect_format(path)
    inspector = function_for(fmt, "inspector", "inspect")
    info = {"path": str(path), "format": fmt.value, "size_bytes": content_size(path)}
    info.update(inspector(path))
    return info
