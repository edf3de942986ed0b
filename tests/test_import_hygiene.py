"""`import compressor, backends` and listing passes or runtimes load no heavy framework."""
from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "tensorflow", "onnxruntime", "tf2onnx", "neural_compressor", "onnx")


def _loaded_after(code: str) -> list[str]:
    probe = f"import sys\n{code}\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_import_is_light() -> None:
    assert _loaded_after("import compressor, backends, benchmarks") == []


def test_listing_passes_and_runtimes_is_light() -> None:
    code = ("from compressor.passes.registry import pass_names\nfrom backends import RUNTIMES, get_runtime\n"
            "pass_names()\n[get_runtime(n).is_available() for n in RUNTIMES]")
    assert _loaded_after(code) == []


def test_validating_a_pipeline_is_light(tmp_path) -> None:
    code = (
        "from compressor.run.pipeline import parse_pipeline\nfrom pathlib import Path\n"
        "parse_pipeline({'name': 'x', 'model': {'path': 'm.onnx'}, 'data': {'source': 'digits'},"
        " 'variants': {'a': ['optimize.onnx', {'quantize.onnx.static': {'per_channel': False}}]}},"
        f" Path({str(tmp_path)!r}))"
    )
    (tmp_path / "m.onnx").write_bytes(b"x")
    assert _loaded_after(code) == []


def test_cli_help_and_passes_are_light() -> None:
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom compressor.cli import app\n"
            "r = CliRunner().invoke(app, ['passes'])\nassert r.exit_code == 0, r.output\n"
            "assert 'quantize.onnx.static' in r.output")
    assert _loaded_after(code) == []
