"""ONNX Runtime: one runtime, with the execution provider chosen by device."""
from __future__ import annotations

import json
import tempfile
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from backends.base import Runtime, Session, repeat
from compressor.errors import MeasurementError, ModelLoadError, RuntimeUnavailableError, first_line
from compressor.frameworks._onnx import session_options
from compressor.frameworks._onnx_graph import INT8_OPS

PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
    "openvino": ["OpenVINOExecutionProvider", "CPUExecutionProvider"],
}

QDQ_OPS = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"}
# float MAC-heavy kernels as they appear after ORT's own fusions (FusedConv, NCHWc Conv, FusedMatMul ...)
FLOAT_COMPUTE_OPS = {"Conv", "ConvTranspose", "MatMul", "Gemm", "FusedConv", "FusedGemm", "FusedMatMul", "Einsum",
                     "Attention", "MultiHeadAttention", "LSTM", "GRU", "RNN"}
KERNEL_SUFFIX = "_kernel_time"


def op_kind(op: str) -> str:
    """What an ONNX Runtime kernel does, for a profile: qdq, int8_compute, float_compute or other."""
    if op in QDQ_OPS:
        return "qdq"
    if op in INT8_OPS:
        return "int8_compute"
    return "float_compute" if op in FLOAT_COMPUTE_OPS else "other"


def trace_ops(events: list[dict[str, Any]], skip_runs: int) -> tuple[list[dict[str, Any]], int]:
    """Per node mean kernel time (ms) over the runs of an ORT profile trace after the first ``skip_runs``, and
    ``median_ms``: the median kernel time times the node's kernel calls per run (robust to a run disturbed
    by a busy machine, for choices made from profiles).

    The trace holds one ``model_run`` event per ``session.run`` and one ``<node>_kernel_time`` event per
    node run; node events before the first kept run (the warm-up) are left out.
    """
    import statistics

    starts = sorted(e["ts"] for e in events if e.get("cat") == "Session" and e.get("name") == "model_run")
    kept = starts[skip_runs:]
    if not kept:
        raise MeasurementError(f"the onnxruntime profile holds {len(starts)} runs, none after the "
                               f"{skip_runs} warm-up runs; raise the profile's runs.")
    per_node: dict[str, list[Any]] = {}
    for e in events:
        name = e.get("name", "")
        if e.get("cat") != "Node" or not name.endswith(KERNEL_SUFFIX) or e.get("ts", -1) < kept[0]:
            continue
        args = e.get("args", {})
        op = args.get("op_name", "?")
        node = name[:-len(KERNEL_SUFFIX)] or f"{op}#{args.get('node_index', '?')}"  # unnamed nodes
        per_node.setdefault(node, [op, []])[1].append(float(e.get("dur", 0)))
    rows = [{"node": node, "op": op, "kind": op_kind(op), "ms": sum(us) / len(kept) / 1000.0,
             "median_ms": statistics.median(us) * len(us) / len(kept) / 1000.0}
            for node, (op, us) in per_node.items()]
    return rows, len(kept)


class OnnxSession(Session):
    def __init__(self, session: Any, device: str) -> None:
        self._session = session
        self.device = device
        self.input_names = [i.name for i in session.get_inputs()]
        self.providers = session.get_providers()

    @property
    def inference_session(self) -> Any:
        """The onnxruntime InferenceSession this Session runs (a benchmark times it bare)."""
        return self._session

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self._session.run(None, feeds)

    def close(self) -> None:
        self._session = None


class OnnxRuntime(Runtime):
    name = "onnxruntime"
    formats = ("onnx", "ort")
    devices = tuple(PROVIDERS)
    package = "onnxruntime"
    install_hint = "pip install 'compressor[onnx]'"
    profiler = "onnxruntime"

    def available_devices(self) -> list[str]:
        if not self.is_available():
            return []
        import onnxruntime as ort

        have = set(ort.get_available_providers())
        return [d for d, providers in PROVIDERS.items() if providers[0] in have]

    def open(self, artifact: Any, device: str = "cpu", threads: int = 1, **options: Any) -> OnnxSession:
        import onnxruntime as ort

        if device not in self.available_devices():
            raise RuntimeUnavailableError(
                f"onnxruntime has no '{device}' provider here (available: "
                f"{', '.join(ort.get_available_providers())}); install onnxruntime-gpu or use onnxruntime:cpu."
            )
        opts = session_options(threads, options.get("optimization", "all"), options.get("profile", False))
        if options.get("profile_prefix"):
            opts.profile_file_prefix = str(options["profile_prefix"])
        try:
            session = ort.InferenceSession(str(artifact.path), opts, providers=PROVIDERS[device])
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph/... types
            first = first_line(exc, 300)
            raise ModelLoadError(
                f"onnxruntime could not load '{artifact.path}': {first}. Check that the file is a "
                f"complete, valid model (re-export it)."
            ) from None
        return OnnxSession(session, device)

    def profile_ops(self, artifact: Any, device: str, threads: int, feeds: dict[str, np.ndarray],
                    warmup_runs: int, runs: int, max_seconds: float) -> tuple[list[dict[str, Any]], int]:
        """ONNX Runtime's profiler (the optimized graph's nodes, as they run), warm-up runs left out."""
        with tempfile.TemporaryDirectory(prefix="compressor-profile-") as tmp:
            session = self.open(artifact, device, threads, profile=True, profile_prefix=Path(tmp) / "ort")
            warm, _ = repeat(partial(session.run, feeds), warmup_runs, runs, max_seconds)
            events = json.loads(Path(session.inference_session.end_profiling()).read_text())
            session.close()
        return trace_ops(events, warm)
