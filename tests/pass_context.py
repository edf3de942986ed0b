"""A run context with data, evaluator and reference loaded, for applying passes by hand in tests.

Built with the run's own ``prepare``, so tests set a run up exactly as ``compressor run`` does.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from compressor.run.context import RunContext, prepare
from compressor.run.pipeline import parse_pipeline
from tests.conftest import pipeline_dict


def context_for(tmp_path: Path, raw: dict[str, Any]) -> RunContext:
    """The prepared context of the pipeline mapping ``raw`` (relative paths against ``tmp_path``)."""
    return prepare(parse_pipeline(raw, tmp_path), tmp_path / "out" / "cache")


def make_context(tmp_path: Path, weights: Path | None, factory: str = "tests.tiny_models:TinyCNN",
                 kwargs: dict[str, Any] | None = None, data: dict[str, Any] | None = None,
                 metric: str = "accuracy", **overrides: Any) -> RunContext:
    """A context on the 8x8 digits whose reference is ``factory`` (+ ``weights``), ready for ``apply_pass``."""
    raw = pipeline_dict(weights or Path("unused"), {"a": ["convert.onnx"]}, **overrides)
    raw["model"] = {"factory": factory, **({"weights": str(weights)} if weights else {}), "kwargs": kwargs or {}}
    if data:
        raw["data"].update(data)
    raw["metric"] = metric
    return context_for(tmp_path, raw)
