"""Content-addressed cache of pass results and evaluations.

A pass result is keyed by the sha256 of its input artifact's content, the pass name and version,
its canonical config, and the fingerprint of the data it saw. Entries are written into a temporary
folder and renamed into place, so a killed run leaves no half-written entry and the next run
resumes from what was finished.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from compressor.artifact import Artifact
from compressor.errors import ConfigError

ENTRY_JSON = "entry.json"


def canonical_json(data: Any) -> str:
    """JSON with sorted keys and no spaces: the same config always hashes the same."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)


def cache_key(*parts: Any) -> str:
    """sha256 over the canonical JSON of ``parts``."""
    return hashlib.sha256(canonical_json(list(parts)).encode()).hexdigest()


def atomic_write_text(path: Path, text: str) -> None:
    """Write a file through a temporary sibling and rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def path_inside(folder: Path, relative: str | Path, what: str) -> Path:
    """``folder / relative``, refused unless it resolves to a path inside ``folder``.

    Names from a pipeline file become file names (a variant's model under ``artifacts/``); they are
    checked where they are declared, and this check at the join keeps any later caller inside too.
    """
    root = Path(folder).resolve()
    target = (root / relative).resolve()
    if target == root or not target.is_relative_to(root):
        raise ConfigError(
            f"{what} '{relative}' would be written outside its folder '{folder}'; names that become "
            f"paths may hold letters, digits, '.', '_', '-', '+' only: rename it."
        )
    return target


class Cache:
    """Folders under ``root/objects/<key>`` holding an artifact's files and its ``entry.json``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        (self.root / "objects").mkdir(parents=True, exist_ok=True)
        (self.root / "tmp").mkdir(parents=True, exist_ok=True)
        (self.root / "evals").mkdir(parents=True, exist_ok=True)

    def entry_dir(self, key: str) -> Path:
        return self.root / "objects" / key

    def get(self, key: str) -> tuple[Artifact, dict[str, Any]] | None:
        """The cached artifact and its record, or None on a miss."""
        entry = self.entry_dir(key) / ENTRY_JSON
        if not entry.is_file():
            return None
        data = json.loads(entry.read_text())
        art = data["artifact"]
        art["path"] = str(self.entry_dir(key) / art["path"])
        return Artifact.from_dict(art), data.get("record", {})

    @contextmanager
    def staging(self) -> Iterator[Path]:
        """A fresh temporary folder inside the cache (same file system, so rename is atomic)."""
        tmp = self.root / "tmp" / uuid.uuid4().hex
        tmp.mkdir(parents=True)
        try:
            yield tmp
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def commit(self, key: str, staged: Path, artifact: Artifact, record: dict[str, Any]) -> Artifact:
        """Move a staged folder into place as entry ``key``; return the artifact at its new path."""
        final = self.entry_dir(key)
        rel = Path(artifact.path).relative_to(staged)
        data = artifact.to_dict()
        data["path"] = str(rel)
        (staged / ENTRY_JSON).write_text(json.dumps({"artifact": data, "record": record}, indent=2, sort_keys=True))
        if final.exists():  # another run finished it first: keep theirs
            shutil.rmtree(staged, ignore_errors=True)
        else:
            os.replace(staged, final)
        cached = self.get(key)
        assert cached is not None  # just written
        return cached[0]

    def get_json(self, kind: str, key: str) -> Any | None:
        path = self.root / "evals" / f"{kind}-{key}.json"
        return json.loads(path.read_text()) if path.is_file() else None

    def put_json(self, kind: str, key: str, data: Any) -> None:
        atomic_write_text(self.root / "evals" / f"{kind}-{key}.json", json.dumps(data, sort_keys=True))

    def memo(self, kind: str, key: str, compute: Callable[[], Any]) -> tuple[Any, bool]:
        """Return (value, hit): the cached JSON value for key, or compute and store it."""
        value = self.get_json(kind, key)
        if value is not None:
            return value, True
        value = compute()
        self.put_json(kind, key, value)
        return value, False
