"""GPU paths: ONNX Runtime's CUDA / TensorRT providers and PyTorch CUDA. Skipped without a GPU."""
from __future__ import annotations

import pytest

from backends import get_runtime, parse_target
from compressor.errors import RuntimeUnavailableError

pytestmark = pytest.mark.gpu


def _ort_has(device: str) -> bool:
    return device in get_runtime("onnxruntime").available_devices()


def _torch_cuda() -> bool:
    return "cuda" in get_runtime("torch").available_devices()


def test_gpu_targets_parse_everywhere() -> None:
    assert str(parse_target("onnxruntime:cuda")) == "onnxruntime:cuda"
    assert str(parse_target("onnxruntime:tensorrt")) == "onnxruntime:tensorrt"
    assert str(parse_target("torch:cuda")) == "torch:cuda"


def test_missing_gpu_is_a_clear_error(tmp_path) -> None:
    if _ort_has("cuda"):
        pytest.skip("this machine has a CUDA provider")
    from compressor.artifact import Artifact, Signature, TensorSpec
    from compressor.formats import Format

    art = Artifact(Format.ONNX, tmp_path / "m.onnx", Signature((TensorSpec("x", ("batch", 4)),)), "0" * 64)
    with pytest.raises(RuntimeUnavailableError, match="no 'cuda' provider"):
        get_runtime("onnxruntime").open(art, device="cuda")


@pytest.mark.parametrize("device", ["cuda", "tensorrt"])
def test_ort_gpu_matches_cpu(device: str, tmp_path, tiny_weights) -> None:
    if not _ort_has(device):
        pytest.skip(f"no onnxruntime {device} provider on this machine")
    from compressor import run_pipeline
    from compressor.run.pipeline import parse_pipeline
    from tests.conftest import pipeline_dict

    raw = pipeline_dict(tiny_weights, {"fp32": ["convert.onnx"]}, targets=[f"onnxruntime:{device}"])
    results = run_pipeline(parse_pipeline(raw, tmp_path), tmp_path / "out")
    bench = results["variants"][0]["benchmarks"]
    assert bench and all(b["device"] == device and b["p50_ms"] > 0 for b in bench)
    assert all(abs(b["metric"] - results["variants"][0]["metric"]) < 0.01 for b in bench)


def test_torch_cuda_matches_cpu(tmp_path, tiny_weights) -> None:
    if not _torch_cuda():
        pytest.skip("no CUDA device for torch on this machine")
    from compressor import run_pipeline
    from compressor.run.pipeline import parse_pipeline
    from tests.conftest import pipeline_dict

    raw = pipeline_dict(tiny_weights, {"fp32": ["convert.onnx"]}, targets=["torch:cuda"])
    results = run_pipeline(parse_pipeline(raw, tmp_path), tmp_path / "out")
    bench = results["reference"]["benchmarks"]
    assert bench and all(b["device"] == "cuda" for b in bench)
    assert abs(bench[0]["metric"] - results["reference"]["metric"]) < 1e-3
