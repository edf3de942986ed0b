"""run.py in a fresh virtualenv holding only the runtime and numpy reproduces the golden outputs.

One venv per runtime, built once per test session (pip's own cache makes a rebuild quick): about
20 s each here. The runtime is pinned to the version installed beside compressor, as the manifest says.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

PACKAGES = {"onnxruntime:cpu": "onnxruntime", "litert:cpu": "ai-edge-litert"}


def _fresh_venv(folder: Path, runtime_package: str) -> Path:
    """A venv without pip of its own, filled by this interpreter's pip with numpy and the runtime only."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = folder / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--disable-pip-version-check",
                    "numpy", f"{runtime_package}=={version(runtime_package)}"], check=True, timeout=900)
    return python


def _bare_env() -> dict[str, str]:
    """This environment without the variables that would put the project's folders on the venv's path
    (the checkout holds compressor.egg-info: listed from there, 'compressor' would seem installed)."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}


@pytest.mark.slow
@pytest.mark.parametrize("target", list(PACKAGES))
def test_run_py_reproduces_the_golden_outputs_in_a_fresh_venv(target: str, packages: dict[str, Path],
                                                              tmp_path_factory: pytest.TempPathFactory) -> None:
    folder = packages[target]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["runtime"]["package"] == PACKAGES[target]
    python = _fresh_venv(tmp_path_factory.mktemp("venv") / "venv", PACKAGES[target])
    listed = subprocess.run([str(python), "-c", "import sys, importlib.metadata as m; "
                             "print(sorted(d.metadata['Name'].lower() for d in m.distributions()))"],
                            cwd=folder, env=_bare_env(), capture_output=True, text=True, check=True).stdout
    assert "compressor" not in listed and "torch" not in listed and "onnx'" not in listed
    shown = subprocess.run([str(python), "run.py"], cwd=folder, env=_bare_env(), capture_output=True, text=True)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    models = [m["path"] for m in manifest["models"]]
    assert shown.stdout.count("(within the tolerance)") == len(models) * len(manifest["signature"]["outputs"])
    report = json.loads(subprocess.run([str(python), "run.py", "--json"], cwd=folder, env=_bare_env(),
                                       capture_output=True, text=True,
                                       check=True).stdout)
    assert [Path(r["path"]).name for r in report["models"]] == models
    assert all(r["within_tolerance"] for r in report["models"])
    assert all(r["preprocessing_max_abs_error"] <= 1e-5 for r in report["models"])
