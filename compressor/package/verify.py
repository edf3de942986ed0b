"""``compressor verify PKG``: every check a device team needs before trusting a package.

A package is a folder, a .zip of one, or an OCI image layout of one. The checks: no path that leaves
the package, no symlink, no pickle anywhere; the manifest against its schema and against the copy
inside the model; every file's sha256 and size, nothing unlisted; the model loaded by the stated
runtime in a fresh process, its signature compared and the golden sample reproduced within tolerance.
Each failure is one line: ``<file>: <check>: <what is wrong>``.
"""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from compressor.package.container import extract_zip, pickle_findings, safe_relative
from compressor.package.manifest import MANIFEST, PackageManifest, canonical, embedded_facts, file_sha256

TEMPLATE = Path(__file__).with_name("run_template.py")
MODEL_TIMEOUT_S = 300


def verify_package(path: Path) -> list[str]:
    """The failures of the package at ``path`` (a folder, .zip or OCI layout); empty when it holds."""
    path = Path(path)
    if path.is_symlink():
        return [f"{path.name}: symlink: the package itself is a symlink; give the real path"]
    with tempfile.TemporaryDirectory(prefix="compressor-verify-") as tmp:
        if path.is_file():
            failures = extract_zip(path, Path(tmp) / "pkg")
            return failures or verify_folder(Path(tmp) / "pkg")
        if (path / "oci-layout").is_file():
            from compressor.package.oci import read_layout

            failures = read_layout(path, Path(tmp) / "pkg")
            return failures or verify_folder(Path(tmp) / "pkg")
        if not path.is_dir():
            return [f"{path}: package: no such folder, .zip or OCI layout"]
        return verify_folder(path)


def verify_folder(folder: Path) -> list[str]:
    """The failures of a package folder."""
    present, failures = _walk(folder)
    failures += pickle_findings(folder, present)
    manifest, problems = _manifest(folder)
    failures += problems
    if manifest is None:
        return failures
    failures += _files(folder, manifest, present)
    if any(f.split(":")[0] in {m["path"] for m in manifest["models"]} for f in failures):
        return failures  # a damaged model file is not run
    for model in manifest["models"]:
        failures += _embedded(folder, manifest, model)
    if failures:
        return failures  # a manifest that is not the model's own is not held against the model
    return _run_models(folder, manifest)


def _walk(folder: Path) -> tuple[set[str], list[str]]:
    """Every regular file's relative path; a symlink or special file anywhere is a failure."""
    present, failures = set(), []
    for root, dirs, files in os.walk(folder, followlinks=False):
        for name in dirs + files:
            full = Path(root) / name
            rel = full.relative_to(folder).as_posix()
            mode = full.lstat().st_mode
            if stat.S_ISLNK(mode):
                failures.append(f"{rel}: symlink: packages hold regular files only")
            elif stat.S_ISREG(mode):
                present.add(rel)
            elif not stat.S_ISDIR(mode):
                failures.append(f"{rel}: file type: not a regular file")
    return present, failures


def _manifest(folder: Path) -> tuple[dict[str, Any] | None, list[str]]:
    path = folder / MANIFEST
    if not path.is_file() or path.is_symlink():
        return None, [f"{MANIFEST}: missing: a package needs its manifest"]
    try:
        data = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        return None, [f"{MANIFEST}: json: not valid JSON ({exc})"]
    try:
        PackageManifest.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        return None, [f"{MANIFEST}: schema: '{where}' {err['msg'].lower()} (see 'compressor schema --package')"]
    return data, []


def _files(folder: Path, manifest: dict[str, Any], present: set[str]) -> list[str]:
    failures, listed = [], set()
    for entry in manifest["files"]:
        rel = entry["path"]
        listed.add(rel)
        if not safe_relative(rel):
            failures.append(f"{rel}: path: leaves the package (absolute or '..'); packages list relative paths")
        elif rel not in present:
            failures.append(f"{rel}: missing: listed in the manifest but not in the package")
        elif (size := (folder / rel).stat().st_size) != entry["size_bytes"]:
            failures.append(f"{rel}: size: {size} bytes, the manifest says {entry['size_bytes']}")
        elif (digest := file_sha256(folder / rel)) != entry["sha256"]:
            failures.append(f"{rel}: sha256: {digest[:16]}..., the manifest says {entry['sha256'][:16]}...")
    failures += [f"{rel}: unlisted: not in the manifest's file list" for rel in sorted(present - listed - {MANIFEST})]
    needed = {m["path"] for m in manifest["models"]} | {manifest["golden"]["path"]}
    needed |= {m["required_operators"] for m in manifest["models"] if m.get("required_operators")}
    failures += [f"{rel}: missing: the manifest names it but does not list it in 'files'" for rel in sorted(needed - listed)]
    return failures


def _embedded(folder: Path, manifest: dict[str, Any], model: dict[str, Any]) -> list[str]:
    """The facts inside the model must be the manifest's (less the file list)."""
    from compressor.errors import CompressorError

    reader = _reader(model["format"])
    try:
        text = reader(folder / model["path"])
    except CompressorError as exc:
        return [f"{model['path']}: load: {exc}"]
    if text is None:
        return [f"{model['path']}: metadata: the model holds no package facts (metadata 'compressor.package')"]
    inside, here = json.loads(text), embedded_facts(manifest)
    if canonical(inside) == canonical(here):
        return []
    where, a, b = _first_difference(here, inside)
    return [f"{MANIFEST}: facts: '{where}' is {json.dumps(a)[:80]} here but {json.dumps(b)[:80]} inside {model['path']}"]


def _reader(fmt: str) -> Any:
    if fmt == "tflite":
        from compressor.package._litert import read_embedded
    else:
        from compressor.package._onnx import read_embedded
    return read_embedded


def _first_difference(a: Any, b: Any, where: str = "") -> tuple[str, Any, Any]:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if canonical(a.get(key)) != canonical(b.get(key)):
                return _first_difference(a.get(key), b.get(key), f"{where}.{key}" if where else key)
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            if canonical(x) != canonical(y):
                return _first_difference(x, y, f"{where}[{i}]")
    return where or "(whole)", a, b


def _run_models(folder: Path, manifest: dict[str, Any]) -> list[str]:
    """Our own run.py (never the package's) in a fresh process: the stated runtime loads each model."""
    cmd = [sys.executable, "-I", str(TEMPLATE), "--package", str(folder), "--json"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=MODEL_TIMEOUT_S, cwd=tempfile.gettempdir(), env=env)
    except subprocess.TimeoutExpired:
        return [f"{manifest['models'][0]['path']}: runtime: no result within {MODEL_TIMEOUT_S} s"]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1][:200]
        return [f"{manifest['models'][0]['path']}: runtime: {manifest['runtime']['name']} could not run it ({tail})"]
    failures = []
    for report in json.loads(lines[-1])["models"]:
        failures += _compare(Path(report["path"]).name, manifest, report)
    return failures


def _compare(name: str, manifest: dict[str, Any], report: dict[str, Any]) -> list[str]:
    failures = []
    for kind in ("inputs", "outputs"):
        want, got = manifest["signature"][kind], report["signature"][kind]
        if [t["name"] for t in want] != [t["name"] for t in got]:
            failures.append(f"{name}: signature: {kind} {[t['name'] for t in got]}, the manifest says {[t['name'] for t in want]}")
            continue
        for w, g in zip(want, got):
            if problem := _tensor_difference(w, g):
                failures.append(f"{name}: signature: {kind[:-1]} '{w['name']}' {problem}")
    tol = manifest["golden"]
    for output, ok in report["within"].items():
        if not ok:
            error = report["max_abs_error"][output]
            shown = "a different shape" if error is None else f"max abs error {error:.3g}"
            failures.append(f"{name}: golden: output '{output}' is not reproduced ({shown}; tolerance atol "
                            f"{tol['atol']:g}, rtol {tol['rtol']:g})")
    if report.get("preprocessing_max_abs_error", 0.0) > max(tol["atol"], 1e-5):
        failures.append(f"{name}: preprocessing: the manifest's preprocessing of the raw golden inputs is "
                        f"{report['preprocessing_max_abs_error']:.3g} from the stored inputs")
    return failures


def _tensor_difference(want: dict[str, Any], got: dict[str, Any]) -> str | None:
    shape = [d if isinstance(d, int) else None for d in want["shape"]]
    if shape != got["shape"]:
        return f"has shape {got['shape']} (null: symbolic), the manifest says {want['shape']}"
    if want["dtype"] != got["dtype"]:
        return f"is {got['dtype']}, the manifest says {want['dtype']}"
    wq, gq = want.get("quantization"), got.get("quantization")
    if gq and (not wq or abs(wq["scale"] - gq["scale"]) > 1e-6 * abs(gq["scale"]) or wq["zero_point"] != gq["zero_point"]):
        return f"is quantized with {gq}, the manifest says {wq}"
    return None
