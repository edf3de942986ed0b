"""Artifact: an immutable record of one model in one format.

An artifact holds data only. Loading and running it belong to ``backends/``. Artifacts are
never pickled: they round-trip through JSON, and their files are safetensors, ONNX, TFLite,
.pt2 or .keras.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from compressor.formats import Format

BATCH = "batch"  # the symbolic name of the batch dimension in a signature
SEQUENCE = "sequence"  # the new tokens of a language model
PAST = "past_sequence"  # the tokens a key/value cache input holds: an input the data lacks is fed empty


@dataclass(frozen=True)
class TensorSpec:
    """One input or output: its name, shape (``"batch"`` or another name for symbolic dims), dtype."""

    name: str
    shape: tuple[int | str, ...]
    dtype: str = "float32"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TensorSpec:
        return cls(name=data["name"], shape=tuple(data["shape"]), dtype=data.get("dtype", "float32"))


@dataclass(frozen=True)
class Signature:
    """The inputs and outputs of a model, and the image layout its inputs expect."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...] = ()
    layout: str = "NCHW"  # NHWC for Keras and TFLite-from-Keras image models

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Signature:
        return cls(
            inputs=tuple(TensorSpec.from_dict(t) for t in data["inputs"]),
            outputs=tuple(TensorSpec.from_dict(t) for t in data.get("outputs", ())),
            layout=data.get("layout", "NCHW"),
        )

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]


@dataclass(frozen=True)
class Lineage:
    """Where an artifact came from: its parent, and the pass and config that made it."""

    parent: str | None = None
    pass_name: str | None = None
    pass_config: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass(frozen=True)
class Artifact:
    """One model in one format, with its content hash and lineage.

    ``path`` is a file, or a folder for formats stored as several files (torch, SavedModel).
    ``meta`` carries format facts a backend needs to load it (a torch factory and its kwargs)
    and facts a pass reported (sparsity reached, nodes kept in float).
    """

    format: Format
    path: Path
    signature: Signature
    sha256: str
    lineage: Lineage = field(default_factory=Lineage)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        """A short content id; two artifacts with the same bytes share it."""
        return self.sha256[:16]

    @property
    def size_bytes(self) -> int:
        return content_size(self.path)

    def with_lineage(self, lineage: Lineage) -> Artifact:
        return replace(self, lineage=lineage)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["format"] = self.format.value
        data["path"] = str(self.path)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Artifact:
        return cls(
            format=Format(data["format"]),
            path=Path(data["path"]),
            signature=Signature.from_dict(data["signature"]),
            sha256=data["sha256"],
            lineage=Lineage(**data.get("lineage", {})),
            meta=data.get("meta", {}),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file())
    return [path]


def content_sha256(path: Path) -> str:
    """Hash a file, or a folder as its sorted relative names and contents."""
    digest = hashlib.sha256()
    root = path if path.is_dir() else path.parent
    for file in _files(path):
        if path.is_dir():
            digest.update(str(file.relative_to(root)).encode() + b"\0")
        with open(file, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def content_size(path: Path) -> int:
    """Bytes on disk of a file or of every file in a folder."""
    return sum(f.stat().st_size for f in _files(path))


def gzip_size(path: Path) -> int:
    """Bytes after gzip -9 of the file (or the folder's files concatenated): what a download costs."""
    import zlib

    total = 0
    for file in _files(path):
        compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
        with open(file, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                total += len(compressor.compress(chunk))
        total += len(compressor.flush())
    return total
