"""benchmarks.harness_overhead times the same call bare and through the harness (behaviour, no timing)."""
from __future__ import annotations

import numpy as np

from backends._onnx import OnnxSession
from benchmarks.harness_overhead import bare_p50_ms, harness_p50_ms


class CountingOrtSession:
    """Stands in for an onnxruntime InferenceSession: records every run's output names and feeds."""

    def __init__(self) -> None:
        self.calls: list[tuple[object, object]] = []

    def get_inputs(self) -> list:
        return []

    def get_providers(self) -> list[str]:
        return ["CPUExecutionProvider"]

    def run(self, names: object, feeds: object) -> list[np.ndarray]:
        self.calls.append((names, feeds))
        return []


def test_bare_loop_and_harness_run_the_same_session_call() -> None:
    feeds = {"x": np.zeros((1, 16), np.float32)}
    ort = CountingOrtSession()
    session = OnnxSession(ort, "cpu")
    assert session.inference_session is ort
    bare_p50_ms(ort, feeds, warmup=2, runs=7)
    assert len(ort.calls) == 9
    harness_p50_ms(session, feeds, warmup=2, runs=7)
    assert len(ort.calls) == 18
    assert all(names is None and f is feeds for names, f in ort.calls)  # same call, same feeds object, every run
