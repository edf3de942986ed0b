"""A package as a .zip, read without trusting it: every entry is checked (no absolute path, no '..',
no symlink, no special file) before anything is written, and no file may be a pickle."""
from __future__ import annotations

import shutil
import stat
import zipfile
from pathlib import Path, PurePosixPath

from compressor.cache import temp_sibling

PICKLE_SUFFIXES = (".pkl", ".pickle", ".pt", ".pth", ".joblib", ".ckpt")
MAX_ENTRIES = 10_000
MAX_UNPACKED_BYTES = 16 << 30  # a zip bomb is refused before anything is written


def write_zip(folder: Path, dst: Path) -> Path:
    """``dst``: the package folder's files at the archive's root, in sorted order, written atomically."""
    tmp = temp_sibling(dst)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(p for p in folder.rglob("*") if p.is_file()):
                archive.write(path, path.relative_to(folder).as_posix())
        tmp.replace(dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dst


def safe_relative(rel: str) -> bool:
    """Whether ``rel`` is a relative path that stays inside its folder (no '..', not absolute, no backslash)."""
    path = PurePosixPath(rel)
    return bool(rel) and not path.is_absolute() and ".." not in path.parts and "\\" not in rel


def _entry_problem(info: zipfile.ZipInfo) -> str | None:
    name = info.filename
    mode = info.external_attr >> 16
    if name.startswith("/") or (len(name) > 1 and name[1] == ":") or name.startswith("\\"):
        return "zip entry: absolute path; packages hold relative paths only"
    if ".." in PurePosixPath(name.replace("\\", "/")).parts:
        return "zip entry: path leaves the package ('..')"
    if stat.S_ISLNK(mode):
        return "symlink: packages hold regular files only"
    if mode and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        return "zip entry: not a regular file"
    return None


def extract_zip(path: Path, dst: Path) -> list[str]:
    """Check every entry of the zip at ``path`` and, when all are sound, extract it into ``dst``."""
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            failures = [f"{i.filename}: {problem}" for i in infos if (problem := _entry_problem(i))]
            if len(infos) > MAX_ENTRIES:
                failures.append(f"{path.name}: zip: {len(infos)} entries; a package holds a few files")
            if sum(i.file_size for i in infos) > MAX_UNPACKED_BYTES:
                failures.append(f"{path.name}: zip: unpacks to more than {MAX_UNPACKED_BYTES >> 30} GiB; not extracted")
            if failures:
                return failures
            broken = archive.testzip()
            if broken is not None:
                return [f"{broken}: zip: the entry's CRC does not match (corrupt archive)"]
            dst.mkdir(parents=True)
            for info in infos:
                target = dst / info.filename
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as src, open(target, "wb") as out:
                    while chunk := src.read(1 << 20):
                        out.write(chunk)
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        return [f"{path.name}: zip: not a readable zip archive (truncated or corrupt: {exc})"]
    return []


def _is_pickle(head: bytes) -> bool:
    """A pickle of protocol 2 or later starts with PROTO (0x80) and its protocol number."""
    return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def pickle_findings(folder: Path, files: set[str]) -> list[str]:
    """A line for every file (or .npz member) that is, or may hold, a pickle."""
    failures = []
    for rel in sorted(files):
        path = folder / rel
        with open(path, "rb") as fh:
            head = fh.read(2)
        if rel.lower().endswith(PICKLE_SUFFIXES) or _is_pickle(head):
            failures.append(f"{rel}: pickle: a pickle file (loading it can run code); packages never hold one")
        elif rel.lower().endswith((".npz", ".npy")):
            failures += [f"{rel}: pickle: {why}" for why in _numpy_pickles(path)]
    return failures


def _numpy_pickles(path: Path) -> list[str]:
    """Members of an .npy / .npz whose dtype holds Python objects (stored as pickles)."""
    import numpy as np

    def object_dtype(fh) -> bool:  # noqa: ANN001 - a binary file object
        version = np.lib.format.read_magic(fh)
        reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        return reader(fh)[2].hasobject

    try:
        if path.suffix.lower() == ".npy":
            with open(path, "rb") as fh:
                return ["an object array (a pickle inside)"] if object_dtype(fh) else []
        found = []
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                with archive.open(name) as fh:
                    if not name.endswith(".npy"):
                        found.append(f"member '{name}' is not a plain array")
                    elif object_dtype(fh):
                        found.append(f"member '{name}' is an object array (a pickle inside)")
        return found
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        return [f"not a readable numpy file ({exc})"]


def replace_folder(stage: Path, out: Path) -> None:
    """Put the staged folder at ``out``; an older folder there is moved aside first, then removed."""
    old = temp_sibling(out) if out.exists() else None
    if old:
        out.rename(old)
    stage.rename(out)
    if old:
        shutil.rmtree(old, ignore_errors=True)
