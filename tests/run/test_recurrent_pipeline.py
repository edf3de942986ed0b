"""A recurrent ONNX model runs end to end: a scalar constant input, a state whose batch is axis 1,
a fixed batch of 1, both outputs scored, benchmarks fed the same way, and the inspect counts."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.tiny_recurrent import build_recurrent_onnx, parameter_count, write_recurrent_data

PIPELINE = {
    "name": "recurrent",
    "model": {"path": "model.onnx"},
    "data": {"npz": "data.npz", "constants": {"sample_rate": 16000},
             "batch_axis": {"state": 1, "new_state": 1}, "evaluation": {"split": "test", "batch_size": 1}},
    "metric": "cosine",
    "budget": {"max_drop": 0.05},
    "variants": {"dyn": ["quantize.onnx.dynamic"], "opt": ["optimize.onnx"]},
    "targets": ["onnxruntime:cpu"],
    "benchmark": {"batch_sizes": [1], "min_runs": 3, "min_seconds": 0, "warmup_runs": 1, "warmup_seconds": 0},
}


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    root = Path(__file__).resolve().parents[2]
    return subprocess.run([sys.executable, "-m", "compressor.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=600, env={**__import__("os").environ, "PYTHONPATH": str(root)})


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("recurrent")
    build_recurrent_onnx(tmp / "model.onnx")
    write_recurrent_data(tmp / "data.npz")
    (tmp / "pipeline.yaml").write_text(yaml.safe_dump(PIPELINE))
    proc = _cli("run", "pipeline.yaml", "--out", "out", cwd=tmp)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return tmp


def test_recurrent_model_runs_with_constants_and_batch_axis(run_dir: Path) -> None:
    results = json.loads((run_dir / "out" / "results.json").read_text())
    assert results["metric"]["outputs"] == ["scores", "new_state"]
    assert results["data"]["evaluation_samples"] == 10 and results["data"]["evaluation_batch_size"] == 1
    assert results["reference"]["metric"] == pytest.approx(1.0)
    for v in results["variants"]:
        assert v["status"] == "ok", v.get("error")
        assert set(v["metric_per_output"]) == {"scores", "new_state"}
        assert v["metric"] == pytest.approx(min(v["metric_per_output"].values()))
        assert 0.9 < v["metric"] <= 1.0 + 1e-9 and v["within_budget"]
        bench = v["benchmarks"]
        assert [b["batch_size"] for b in bench] == [1] and all("p50_ms" in b for b in bench), bench
    opt = next(v for v in results["variants"] if v["name"] == "opt")
    assert opt["metric"] == pytest.approx(1.0, abs=1e-5)  # graph optimization keeps the outputs
    report = (run_dir / "out" / "report.md").read_text()
    assert "Data: 10 evaluation samples" in report and "scores, new_state" in report
    assert "10 evaluation samples" in (run_dir / "out" / "report.html").read_text()


def test_inspect_counts_subgraph_weights_and_gru_macs_quietly(run_dir: Path) -> None:
    proc = _cli("inspect", "model.onnx", cwd=run_dir)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert f"parameters: {parameter_count()}" in text
    assert "GRU" in text and "then_matmul" in text and "else_matmul" in text
    macs = int(text.split("\nmacs: ")[1].split()[0])
    assert macs == 10 * 1 * (2 * 48 * 8 + 2 * 48 * 16) + 32 * 24 + 2 * 24 * 4
    assert "onnxruntime" not in proc.stderr.lower() and "[E:" not in proc.stderr


def test_without_the_constant_the_model_cannot_be_fed(tmp_path: Path) -> None:
    from compressor.errors import DataError
    from compressor.run.context import prepare
    from compressor.run.pipeline import parse_pipeline

    build_recurrent_onnx(tmp_path / "model.onnx")
    write_recurrent_data(tmp_path / "data.npz")
    raw = json.loads(json.dumps(PIPELINE))
    del raw["data"]["constants"]
    with pytest.raises(DataError, match=r"needs inputs \['sample_rate'\].*data\.constants"):
        prepare(parse_pipeline(raw, tmp_path), tmp_path / "cache")
    raw["data"]["constants"] = {"sample_rate": 16000}
    raw["data"]["evaluation"]["batch_size"] = 4
    with pytest.raises(DataError, match=r"fixed batch of 1 on axis 0.*batch_size"):
        prepare(parse_pipeline(raw, tmp_path), tmp_path / "cache")


def test_constant_from_npz_and_a_zero_rate_reference_is_refused(tmp_path: Path) -> None:
    from compressor.errors import DataError
    from compressor.run.context import prepare
    from compressor.run.pipeline import parse_pipeline

    build_recurrent_onnx(tmp_path / "model.onnx")
    write_recurrent_data(tmp_path / "data.npz")
    np.savez(tmp_path / "consts.npz", rate=np.array(16000.0, np.float32), off=np.array(0.0, np.float32))
    raw = json.loads(json.dumps(PIPELINE))
    raw["data"]["constants"] = {"sample_rate": {"npz": "consts.npz", "key": "rate"}}
    ctx = prepare(parse_pipeline(raw, tmp_path), tmp_path / "cache")
    assert ctx.reference_metric == pytest.approx(1.0)
    # a sample rate of 0 zeroes the audio: the state alone drives the model and is still fine, so
    # zero the state too: every output is then the same for all samples and cannot anchor cosine
    np.savez(tmp_path / "flat.npz", **{"x.audio": np.zeros((40, 10, 8), np.float32),
                                         "x.state": np.zeros((2, 40, 16), np.float32)})
    raw["data"].update(npz="flat.npz", constants={"sample_rate": {"npz": "consts.npz", "key": "off"}})
    with pytest.raises(DataError, match=r"reference model's output 'scores'.*(same for every sample|near zero)"):
        prepare(parse_pipeline(raw, tmp_path), tmp_path / "cache2")
