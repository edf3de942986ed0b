"""The CLI as a stranger uses it: from another folder, relative paths, a model module beside the pipeline."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
NET = '''
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, 10)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).flatten(1))
'''


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(ROOT)}  # the project itself, as an installed package would be; not the model's folder
    import os

    return subprocess.run([sys.executable, "-m", "compressor.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **env})


def test_relative_paths_from_another_folder_with_a_factory_beside_the_pipeline(tmp_path: Path) -> None:
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir()
    elsewhere.mkdir()
    (project / "mynet.py").write_text(NET)
    (project / "p.yaml").write_text(yaml.safe_dump({
        "name": "stranger", "model": {"factory": "mynet:Net"},
        "data": {"source": "digits", "calibration": {"split": "train", "limit": 32}},
        "budget": {"max_drop": 1.0}, "variants": {"int8": ["convert.onnx", "quantize.onnx.static"]},
        "targets": ["onnxruntime:cpu", "torch:cpu"],
        "benchmark": {"batch_sizes": [1], "min_runs": 3, "min_seconds": 0, "warmup_runs": 1, "warmup_seconds": 0},
    }))
    proc = _cli("run", "../project/p.yaml", "--out", "out", cwd=elsewhere)
    assert proc.returncode == 0, proc.stderr
    results = json.loads((elsewhere / "out" / "results.json").read_text())
    rows = results["reference"]["benchmarks"] + results["variants"][0]["benchmarks"]
    assert {r["runtime"] for r in rows} == {"torch", "onnxruntime"} and all("p50_ms" in r for r in rows)
    assert (elsewhere / "out" / "pareto.png").is_file() and not (project / "out").exists()


def test_out_that_is_a_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("x")
    proc = _cli("run", str(ROOT / "samples" / "digits_cnn" / "pipeline.yaml"), "--out", "taken", cwd=tmp_path)
    assert proc.returncode == 2 and "is a file, not a folder" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_bench_picks_the_format_runtime_and_refuses_batch_0(tmp_path: Path) -> None:
    model = ROOT / "samples" / "keras_mnist" / "model.h5"
    proc = _cli("bench", str(model), "--batch", "0", cwd=tmp_path)
    assert proc.returncode == 2 and "batch sizes of at least 1" in proc.stderr and "Traceback" not in proc.stderr
    proc = _cli("bench", str(model), "--runtime", "onnxruntime:cpu", cwd=tmp_path)
    assert proc.returncode == 2 and "use --runtime tensorflow:cpu or leave --runtime out" in proc.stderr


def test_bench_feeds_a_scalar_input_and_a_batch_on_axis_1(tmp_path: Path) -> None:
    from tests.tiny_recurrent import build_recurrent_onnx

    model = build_recurrent_onnx(tmp_path / "rec.onnx", batch="batch")  # state [2, batch, 16], sample_rate []
    proc = _cli("bench", str(model), "--batch", "1,3", "--min-runs", "3", "--min-seconds", "0", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert [r["batch_size"] for r in rows] == [1, 3] and all(r["p50_ms"] > 0 for r in rows)
    fixed = build_recurrent_onnx(tmp_path / "rec1.onnx")  # every shape fixed: one batch size only
    proc = _cli("bench", str(fixed), "--batch", "4", cwd=tmp_path)
    assert proc.returncode == 2 and "fixed input shapes" in proc.stderr and "--batch 1" in proc.stderr
    proc = _cli("bench", str(fixed), "--min-runs", "3", "--min-seconds", "0", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
