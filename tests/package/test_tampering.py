"""Every way a package can be damaged or booby-trapped is caught by ``verify`` with its own line."""
from __future__ import annotations

import json
import os
import pickle
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from compressor.package.container import write_zip
from compressor.package.manifest import file_sha256
from compressor.package.verify import verify_package


def _copy(packages: dict[str, Path], tmp_path: Path, target: str = "onnxruntime:cpu") -> Path:
    folder = tmp_path / "pkg"
    shutil.copytree(packages[target], folder)
    return folder


def _edit_manifest(folder: Path, edit: Callable[[dict], None]) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    edit(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))


def _relist(folder: Path, name: str) -> None:
    """Update a file's hash and size in the manifest, as a careless (or sly) editor would."""
    def edit(manifest: dict) -> None:
        for entry in manifest["files"]:
            if entry["path"] == name:
                entry.update(sha256=file_sha256(folder / name), size_bytes=(folder / name).stat().st_size)
    _edit_manifest(folder, edit)


def flipped_model_byte(folder: Path) -> Path:
    data = bytearray((folder / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0x01
    (folder / "model.onnx").write_bytes(bytes(data))
    return folder


def edited_manifest_value(folder: Path) -> Path:
    _edit_manifest(folder, lambda m: m["metric"].update(value=0.999))
    return folder


def missing_file(folder: Path) -> Path:
    (folder / "run.py").unlink()
    return folder


def extra_file(folder: Path) -> Path:
    (folder / "extra.txt").write_text("not listed")
    return folder


def changed_golden_output(folder: Path) -> Path:
    with np.load(folder / "golden.npz", allow_pickle=False) as archive:
        arrays = {k: archive[k] for k in archive.files}
    key = next(k for k in arrays if k.startswith("output."))
    arrays[key] = arrays[key] + 1.0
    np.savez(folder / "golden.npz", **arrays)
    _relist(folder, "golden.npz")  # the hash matches: only running the model can tell
    return folder


def _zip_with(folder: Path, name: str, data: bytes = b"x", mode: int | None = None) -> Path:
    archive = write_zip(folder, folder.with_suffix(".zip"))
    with zipfile.ZipFile(archive, "a") as zf:
        info = zipfile.ZipInfo(name)
        if mode is not None:
            info.external_attr = mode << 16
        zf.writestr(info, data)
    return archive


def zip_entry_leaving(folder: Path) -> Path:
    return _zip_with(folder, "../evil.txt")


def zip_absolute_path(folder: Path) -> Path:
    return _zip_with(folder, "/etc/evil.conf")


def zip_symlink(folder: Path) -> Path:
    return _zip_with(folder, "model-link.onnx", b"/etc/passwd", mode=0o120777)


def symlink_in_folder(folder: Path) -> Path:
    os.symlink("/etc/hostname", folder / "labels.txt")
    return folder


def pickle_file(folder: Path) -> Path:
    (folder / "weights.pkl").write_bytes(pickle.dumps({"w": [1, 2, 3]}, protocol=4))
    return folder


def pickle_in_golden(folder: Path) -> Path:
    with np.load(folder / "golden.npz", allow_pickle=False) as archive:
        arrays = {k: archive[k] for k in archive.files}
    arrays["label"] = np.array([{"a": 1}] * 4, dtype=object)
    np.savez(folder / "golden.npz", **arrays)
    _relist(folder, "golden.npz")
    return folder


def truncated_zip(folder: Path) -> Path:
    archive = write_zip(folder, folder.with_suffix(".zip"))
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])
    return archive


def schema_violation(folder: Path) -> Path:
    _edit_manifest(folder, lambda m: m.pop("golden"))
    return folder


def tampered_oci_blob(folder: Path) -> Path:
    from compressor.package.oci import write_layout

    layout = write_layout(folder, folder.with_name("pkg.oci"))
    blob = max((layout / "blobs" / "sha256").iterdir(), key=lambda p: p.stat().st_size)  # the model
    data = bytearray(blob.read_bytes())
    data[100] ^= 0xFF
    blob.write_bytes(bytes(data))
    return layout


CASES = {
    "flipped byte in the model": (flipped_model_byte, "model.onnx: sha256: "),
    "edited manifest value": (edited_manifest_value, "manifest.json: facts: 'metric.value' is 0.999 here but"),
    "missing file": (missing_file, "run.py: missing: listed in the manifest but not in the package"),
    "extra file": (extra_file, "extra.txt: unlisted: not in the manifest's file list"),
    "changed golden output": (changed_golden_output, "model.onnx: golden: output '"),
    "zip entry with ../": (zip_entry_leaving, "../evil.txt: zip entry: path leaves the package"),
    "absolute path": (zip_absolute_path, "/etc/evil.conf: zip entry: absolute path"),
    "symlink in a zip": (zip_symlink, "model-link.onnx: symlink: packages hold regular files only"),
    "symlink in a folder": (symlink_in_folder, "labels.txt: symlink: packages hold regular files only"),
    "pickle file": (pickle_file, "weights.pkl: pickle: a pickle file"),
    "pickle inside the golden npz": (pickle_in_golden, "golden.npz: pickle: member 'label.npy' is an object array"),
    "truncated zip": (truncated_zip, "pkg.zip: zip: not a readable zip archive"),
    "manifest off its schema": (schema_violation, "manifest.json: schema: 'golden' field required"),
    "tampered OCI blob": (tampered_oci_blob, ": oci: blob sha256:"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_tampering_is_caught_with_its_own_message(case: str, packages: dict[str, Path], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from compressor.cli import app

    damage, expected = CASES[case]
    result = CliRunner().invoke(app, ["verify", str(damage(_copy(packages, tmp_path)))])
    lines = result.stderr.splitlines()
    assert result.exit_code == 1, f"{case}: verify passed a damaged package"
    assert lines and all(line.startswith("FAIL ") for line in lines), result.output
    assert any(expected in line for line in lines), lines


def test_the_changed_golden_output_of_a_tflite_package_is_caught(packages: dict[str, Path], tmp_path: Path) -> None:
    folder = _copy(packages, tmp_path, "litert:cpu")
    failures = verify_package(changed_golden_output(folder))
    assert any(line.startswith("model.tflite: golden: output '") for line in failures), failures


def test_an_untouched_copy_passes(packages: dict[str, Path], tmp_path: Path) -> None:
    assert verify_package(_copy(packages, tmp_path)) == []
    assert verify_package(write_zip(_copy(packages, tmp_path / "z"), tmp_path / "p.zip")) == []
