"""The terminal of a CLI run: no third-party chatter unless --verbose; the run's log goes to OUT/run.log."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import pipeline_dict, write_pipeline

ROOT = Path(__file__).resolve().parents[2]
VARIANTS = {"int8": ["convert.onnx", "quantize.onnx.static"], "dyn": ["convert.onnx", "quantize.onnx.dynamic"]}


def _run(tmp_path: Path, weights: Path, *extra: str) -> tuple[subprocess.CompletedProcess, Path]:
    path = write_pipeline(tmp_path, pipeline_dict(weights, VARIANTS))
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "compressor.cli", "run", str(path), "--out", str(out), "--no-bench",
                           *extra], capture_output=True, text=True, cwd=ROOT, timeout=600)
    return proc, out


def test_run_keeps_third_party_output_in_run_log(tmp_path: Path, tiny_weights: Path) -> None:
    proc, out = _run(tmp_path, tiny_weights)
    assert proc.returncode == 0, proc.stderr
    terminal = proc.stdout + proc.stderr
    for chatter in ("WARNING", "INFO", "pre-processing", "absl", "Warning:", "warnings.warn"):
        assert chatter not in terminal, terminal
    assert proc.stderr.strip() == "", proc.stderr
    assert "quantize.onnx.static" in proc.stdout and "report:" in proc.stdout
    log = (out / "run.log").read_text()
    assert "int8: 2. quantize.onnx.static -> onnx" in log and "dyn: 2. quantize.onnx.dynamic -> onnx" in log
    assert "INFO onnxruntime.quantization" in log  # third-party records land in the file
    for variant in json.loads((out / "results.json").read_text())["variants"]:  # pre-processing is in the ledger
        record = variant["ledger"][-1]["report"]["preprocess"]
        assert record["ran"] is True or record["why"], record


def test_verbose_prints_info_lines_and_appends_to_the_log(tmp_path: Path, tiny_weights: Path) -> None:
    _run(tmp_path, tiny_weights)
    before = (tmp_path / "out" / "run.log").read_text()
    proc, out = _run(tmp_path, tiny_weights, "--verbose")
    assert proc.returncode == 0, proc.stderr
    assert "INFO compressor.cli: int8: 2. quantize.onnx.static" in proc.stderr
    assert (out / "run.log").read_text().startswith(before)  # appended, never truncated

