"""TFLite side of a package: the manifest's facts in the flatbuffer's own ``Model.metadata`` (a named
buffer, as LiteRT's metadata tools write it) and ``Model.description``, readable by any flatbuffer reader."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from compressor.errors import ModelLoadError
from compressor.package.manifest import METADATA_KEY, canonical


def embed(path: Path, facts: dict[str, Any]) -> None:
    """Write ``facts`` as the metadata buffer named ``compressor.package`` and a one-line description."""
    from ai_edge_litert import schema_py_generated as fb
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(path))
    data = canonical(facts).encode()
    buffer = fb.BufferT()
    buffer.data = list(data)
    model.buffers.append(buffer)
    entries = [m for m in (model.metadata or []) if m.name.decode() != METADATA_KEY]
    entry = fb.MetadataT()
    entry.name, entry.buffer = METADATA_KEY, len(model.buffers) - 1
    model.metadata = entries + [entry]
    model.description = f"{facts['name']} {facts['version']}: see metadata '{METADATA_KEY}' (JSON)"
    flatbuffer_utils.write_model(model, str(path))


def read_embedded(path: Path) -> str | None:
    """The embedded facts' JSON text, read with the flatbuffer reader of LiteRT's schema (None when absent)."""
    from ai_edge_litert import schema_py_generated as fb

    try:
        model = fb.Model.GetRootAs(path.read_bytes(), 0)
        for i in range(model.MetadataLength()):
            entry = model.Metadata(i)
            if entry.Name().decode() == METADATA_KEY:
                return model.Buffers(entry.Buffer()).DataAsNumpy().tobytes().decode()
    except Exception:  # flatbuffers raises struct / index errors on a damaged file
        raise ModelLoadError(f"'{path.name}' is not a readable TFLite flatbuffer") from None
    return None
