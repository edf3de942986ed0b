"""The two peers, each with its defaults on the same fp32 ONNX model and calibration samples:
onnxruntime's ``quantize_static`` and NNCF's ``nncf.quantize`` (ONNX backend)."""
from __future__ import annotations

from pathlib import Path
from typing import Any


def ort_default(fp32: Path, dst: Path, split: Any, signature: Any) -> Path:
    """onnxruntime's quantize_static with every default (QDQ, per-tensor, MinMax, no pre-processing)."""
    from onnxruntime.quantization import quantize_static

    from compressor.passes.quantize._onnx import SplitReader

    quantize_static(str(fp32), str(dst), SplitReader(split, signature))
    return dst


def nncf_default(fp32: Path, dst: Path, split: Any, signature: Any) -> Path:
    """NNCF's post-training quantization with its defaults, fed the calibration samples one by one."""
    import nncf
    import onnx

    from compressor.data import feeds_for

    items = [feeds_for(signature, batch, split.feeding) for batch, _ in split.batches(1)]
    quantized = nncf.quantize(onnx.load(str(fp32)), nncf.Dataset(items), subset_size=len(items))
    onnx.save(quantized, str(dst))
    return dst
