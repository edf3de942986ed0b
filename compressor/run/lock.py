"""One run at a time per run folder: an exclusive ``flock`` on ``OUT/.lock`` while a run writes it.

The lock is taken without waiting: a second run into the same folder is refused at once with a
``RunFolderInUse`` error naming the holder's pid. The kernel drops the lock when its holder exits,
however it exits (SIGKILL included), so a killed run never leaves the folder locked. Taking the
lock also removes the temp files that a killed run left in the folder.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from compressor.cache import remove_stale_temps
from compressor.errors import RunFolderInUse

LOCK_NAME = ".lock"
_held: dict[Path, int] = {}  # folders this process holds, with how many nested holders


@contextmanager
def run_folder_lock(out_dir: Path) -> Iterator[None]:
    """Hold the run folder's lock for the block (re-entrant within one process); refuse if another run holds it."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    folder = out_dir.resolve()
    if folder in _held:
        _held[folder] += 1
        try:
            yield
        finally:
            _held[folder] -= 1
        return
    fd = _acquire(out_dir)
    _held[folder] = 1
    try:
        for sub in (out_dir, out_dir / "artifacts"):
            remove_stale_temps(sub)
        yield
    finally:
        del _held[folder]
        _release(fd)


def _acquire(out_dir: Path) -> int:
    import fcntl

    fd = os.open(out_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise RunFolderInUse(
            f"run folder '{out_dir}' is in use by another compressor run (pid {holder}); "
            f"wait for it or choose another --out."
        ) from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _release(fd: int) -> None:
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
