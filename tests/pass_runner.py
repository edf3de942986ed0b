"""A runner with data, evaluator and reference loaded, for applying passes by hand in tests."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from compressor.pipeline import parse_pipeline
from compressor.runner import Runner
from tests.conftest import pipeline_dict


def make_runner(tmp_path: Path, weights: Path | None, factory: str = "tests.tiny_models:TinyCNN",
                kwargs: dict[str, Any] | None = None, data: dict[str, Any] | None = None,
                metric: str = "accuracy") -> Runner:
    """A Runner on the 8x8 digits whose reference is ``factory`` (+ ``weights``), ready for ``apply``."""
    from compressor.data import load_bundle
    from compressor.evaluate import Evaluator

    raw = pipeline_dict(weights or Path("unused"), {"a": ["convert.onnx"]})
    raw["model"] = {"factory": factory, **({"weights": str(weights)} if weights else {}), "kwargs": kwargs or {}}
    if data:
        raw["data"].update(data)
    raw["metric"] = metric
    pipeline = parse_pipeline(raw, tmp_path)
    r = Runner(pipeline, tmp_path / "out", benchmark=False)
    r.data = load_bundle(pipeline.spec.data)
    r.evaluator = Evaluator(r.data, r.metric)
    r.reference = r.load_reference()
    r.evaluator.set_reference(r.reference)
    r.reference_metric, _ = r.metric_of(r.reference)
    return r
