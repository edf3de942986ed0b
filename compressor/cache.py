"""Content-addressed cache of pass results and evaluations.

A pass result is keyed by the sha256 of its input artifact's content, the pass name and version,
its canonical config, and the fingerprint of the data it saw. Entries are written into a staging
folder named for the writing process and renamed into place, so a killed run leaves no
half-written entry and the next run resumes from what was finished; a second writer of the same
key keeps the first complete entry. Nothing is trusted on its word: every hit re-hashes the
artifact against its recorded sha256, and every record (``entry.json``, memoized values) carries a
checksum of its own content; an entry that fails either check is moved aside and its work redone.

By default the cache is shared by every run of the user (``default_cache_dir``), so a new run
folder reuses the work of earlier ones; concurrent runs may write it at the same time.
"""
from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from compressor.artifact import Artifact, content_sha256
from compressor.errors import ConfigError

log = logging.getLogger(__name__)

ENTRY_JSON = "entry.json"
STALE_SECONDS = 24 * 3600  # a staging folder or temp file whose owner cannot be asked is stale after a day
LIVE_STALE_SECONDS = 7 * 24 * 3600  # ... and one of a live pid (maybe a reused one) after a week
_HOST = re.sub(r"[^A-Za-z0-9_.-]", "_", socket.gethostname()) or "host"
_STAGING = re.compile(r"^(\d+)-[0-9a-f]+@(.+)$")  # cache/tmp/<pid>-<random>@<host>
_TEMP = re.compile(r"^\..+\.(\d+)-[0-9a-f]+\.tmp$")  # .<name>.<pid>-<random>.tmp beside its target


def canonical_json(data: Any) -> str:
    """JSON with sorted keys and no spaces: the same config always hashes the same."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)


def cache_key(*parts: Any) -> str:
    """sha256 over the canonical JSON of ``parts``."""
    return hashlib.sha256(canonical_json(list(parts)).encode()).hexdigest()


def default_cache_dir() -> Path:
    """The cache every run shares unless told otherwise: $COMPRESSOR_CACHE, else the XDG cache folder."""
    explicit = os.environ.get("COMPRESSOR_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "compressor"


def process_token() -> str:
    """A name part unique to this process and call: ``<pid>-<random>``."""
    return f"{os.getpid()}-{secrets.token_hex(6)}"


def temp_sibling(path: Path) -> Path:
    """A temporary name beside ``path`` that no other process or call uses (``.NAME.<pid>-<random>.tmp``)."""
    return path.with_name(f".{path.name}.{process_token()}.tmp")


def atomic_write_text(path: Path, text: str) -> None:
    """Write a file through a temporary sibling unique to this process and rename it into place."""
    atomic_write_bytes(path, text.encode())


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write bytes through a temporary sibling unique to this process and rename them into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(path)
    try:
        with open(tmp, "xb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    except (OverflowError, ValueError):
        return False
    return True


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




def _is_stale(path: Path, pid: int | None, same_host: bool) -> bool:
    try:
        age = time.time() - path.lstat().st_mtime
    except FileNotFoundError:
        return False
    if pid is not None and same_host:
        return not _pid_alive(pid) or age > LIVE_STALE_SECONDS
    return age > STALE_SECONDS


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def remove_stale_temps(folder: Path) -> list[Path]:
    """Delete the temp files (``temp_sibling`` names) in ``folder`` whose writer is gone; return them."""
    removed = []
    if not folder.is_dir():
        return removed
    for path in folder.iterdir():
        match = _TEMP.match(path.name)
        if match and _is_stale(path, int(match.group(1)), True):
            _remove(path)
            removed.append(path)
    return removed


def _checksum(*parts: Any) -> str:
    return hashlib.sha256(canonical_json(list(parts)).encode()).hexdigest()


def _stat_signature(path: Path) -> tuple:
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files)


class Cache:
    """Folders under ``root/objects/<key>`` holding an artifact's files and its ``entry.json``.

    ``warnings`` lists the entries this instance discarded (failed content checks); ``on_warning``
    is told each one as it happens. Opening a cache removes staging folders and temp files that
    killed processes left behind.
    """

    def __init__(self, root: Path, on_warning: Callable[[str], None] | None = None) -> None:
        self.root = Path(root).resolve()  # absolute: artifact paths must not depend on the working folder
        for sub in ("objects", "tmp", "memo"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.warnings: list[str] = []
        self._on_warning = on_warning
        self._verified: dict[str, tuple] = {}  # key -> stat signature of the artifact when it was hashed
        self.sweep()

    def entry_dir(self, key: str) -> Path:
        return self.root / "objects" / key

    def sweep(self) -> list[Path]:
        """Remove staging folders and temp files whose process is gone (or that are older than a day)."""
        removed = remove_stale_temps(self.root / "memo")
        for path in (self.root / "tmp").iterdir():
            match = _STAGING.match(path.name)
            pid = int(match.group(1)) if match else None
            if _is_stale(path, pid, bool(match) and match.group(2) == _HOST):
                _remove(path)
                removed.append(path)
        if removed:
            log.info("removed %d stale staging folder(s) or temp file(s) from %s", len(removed), self.root)
        return removed

    def _warn(self, message: str) -> None:
        self.warnings.append(message)
        if self._on_warning is None:
            log.warning("%s", message)
        else:  # the sink shows it (the CLI prints it); the log keeps a record without printing it twice
            log.info("%s", message)
            self._on_warning(message)

    def _discard(self, key: str, why: str) -> None:
        """Move entry ``key`` out of ``objects/`` in one rename, then delete it, and say so."""
        aside = self.root / "tmp" / f"{process_token()}@{_HOST}"
        try:
            os.rename(self.entry_dir(key), aside)
        except FileNotFoundError:  # another run discarded it first
            pass
        else:
            shutil.rmtree(aside, ignore_errors=True)
        self._verified.pop(key, None)
        self._warn(f"cache entry {key[:16]} failed its content check ({why}) and was recomputed")

    def get(self, key: str) -> tuple[Artifact, dict[str, Any]] | None:
        """The cached artifact and its record, or None on a miss; an entry that fails its checks is discarded."""
        folder = self.entry_dir(key)
        if not folder.exists():
            return None
        problem, found = self._read_entry(key, folder)
        if problem:
            self._discard(key, problem)
            return None
        return found

    def _read_entry(self, key: str, folder: Path) -> tuple[str | None, Any]:
        try:
            data = json.loads((folder / ENTRY_JSON).read_text())
            art, record = data["artifact"], data.get("record", {})
        except (OSError, ValueError, KeyError, TypeError):
            return f"its {ENTRY_JSON} is missing or unreadable", None
        if data.get("checksum") != _checksum(key, art, record):
            return f"its {ENTRY_JSON} does not match its checksum", None
        path = folder / art["path"]
        if not path.resolve().is_relative_to(folder.resolve()) or not path.exists():
            return f"its artifact '{art['path']}' is missing", None
        stat = _stat_signature(path)
        if self._verified.get(key) != stat:
            actual = content_sha256(path)
            if actual != art["sha256"]:
                return f"sha256 of '{art['path']}' is {actual[:16]}, recorded {art['sha256'][:16]}", None
            self._verified[key] = stat
        return None, (Artifact.from_dict({**art, "path": str(path)}), record)

    @contextmanager
    def staging(self) -> Iterator[Path]:
        """A fresh folder inside the cache named for this process (same file system, so rename is atomic)."""
        tmp = self.root / "tmp" / f"{process_token()}@{_HOST}"
        tmp.mkdir(parents=True)
        try:
            yield tmp
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def commit(self, key: str, staged: Path, artifact: Artifact, record: dict[str, Any]) -> Artifact:
        """Move a staged folder into place as entry ``key``; return the artifact at its new path.

        When another run committed the same key first, its complete entry is kept and ours dropped.
        """
        final = self.entry_dir(key)
        data = artifact.to_dict()
        data["path"] = str(Path(artifact.path).relative_to(staged))
        entry = {"artifact": data, "record": record, "checksum": _checksum(key, data, record)}
        (staged / ENTRY_JSON).write_text(json.dumps(entry, indent=2, sort_keys=True))
        for _ in range(3):
            try:
                os.rename(staged, final)  # fails on a non-empty folder: never replaces a complete entry
            except OSError as exc:
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
                theirs = self.get(key)  # None when theirs failed its check and was moved aside: retry
                if theirs is not None:
                    shutil.rmtree(staged, ignore_errors=True)
                    return theirs[0]
                continue
            cached = self.get(key)
            if cached is None:
                raise RuntimeError(f"cache entry {key[:16]} failed its content check right after it was written")
            return cached[0]
        raise RuntimeError(f"cache entry {key[:16]} could not be committed: another writer keeps replacing it")

    def _eval_path(self, kind: str, key: str) -> Path:
        return self.root / "memo" / f"{kind}-{key}.json"

    def get_json(self, kind: str, key: str) -> Any | None:
        """A memoized value, or None on a miss; a record that fails its checksum is discarded."""
        path = self._eval_path(kind, key)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            data = None
        if isinstance(data, dict) and "value" in data and data.get("checksum") == _checksum(kind, key, data["value"]):
            return data["value"]
        path.unlink(missing_ok=True)
        self._warn(f"cache entry {kind}-{key[:16]} failed its content check (its checksum does not match) "
                   f"and was recomputed")
        return None

    def put_json(self, kind: str, key: str, data: Any) -> Any:
        """Store a JSON value with the checksum of its content; return it as it reads back."""
        value = json.loads(json.dumps(data, sort_keys=True))  # as a hit reads it back
        record = {"kind": kind, "key": key, "value": value, "checksum": _checksum(kind, key, value)}
        atomic_write_text(self._eval_path(kind, key), json.dumps(record, sort_keys=True))
        return value

    def memo(self, kind: str, key: str, compute: Callable[[], Any], refresh: bool = False) -> tuple[Any, bool]:
        """Return (value, hit): the cached JSON value for key, or compute and store it (always, with ``refresh``)."""
        value = None if refresh else self.get_json(kind, key)
        if value is not None:
            return value, True
        return self.put_json(kind, key, compute()), False
