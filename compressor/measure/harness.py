"""Measure one artifact on one target and batch size, in a fresh subprocess.

The worker is started as ``python -m compressor.measure.worker`` in the caller's folder. The
folders the caller imports its own code from (a model factory beside the pipeline file, the
project's tests) travel in the request, so the worker sees the same code without any
environment trick. Every way the subprocess can fail — a timeout, a crash, no output, output that
is not a result — becomes a MeasurementError that names the measurement and the reason.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from compressor.artifact import Artifact
from compressor.code import TrustPolicy, current_trust
from compressor.data import Split
from compressor.errors import MeasurementError
from compressor.measure.timing import TimingSettings

_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Argument|Fail|Interrupt|Exit)\b[^:]*: ")
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
               "TF_NUM_INTEROP_THREADS")


def batch_feeds(artifact: Artifact, samples: dict[str, np.ndarray] | Split, batch_size: int) -> dict[str, np.ndarray]:
    """Real samples tiled (or cut) to ``batch_size``, mapped to the model's inputs.

    From a Split, its constants are fed unchanged and its batch axes respected.
    """
    from compressor.data import Feeding, feeds_for

    if not isinstance(samples, Split):  # 0-d arrays (a scalar input such as a sample rate) are constants
        samples = Split({k: v for k, v in samples.items() if np.ndim(v)},
                        feeding=Feeding({k: v for k, v in samples.items() if not np.ndim(v)}))
    feeding, arrays = samples.feeding, samples.inputs
    if not arrays:
        return feeds_for(artifact.signature, {}, feeding)
    n = len(next(iter(arrays.values())))
    idx = np.arange(batch_size) % n
    return feeds_for(artifact.signature, {k: v[idx] for k, v in arrays.items()}, feeding)


def random_samples(artifact: Artifact, n: int = 64, seed: int = 0) -> Split:
    """Inputs drawn to fit the signature, for benchmarking a model without data.

    The batch of each input is the axis its signature calls ``batch`` (else the first); a scalar input
    (shape []), such as a sample rate, and an input of fixed shape are fed as they are, unbatched;
    other symbolic dims get 16.
    """
    from compressor.artifact import BATCH
    from compressor.data import Feeding

    rng = np.random.default_rng(seed)
    inputs, constants, axes = {}, {}, {}
    for spec in artifact.signature.inputs:
        dims = list(spec.shape)
        if not dims or (BATCH not in dims and all(isinstance(d, int) and d > 0 for d in dims)):
            # a scalar, or a fully fixed shape (a fixed-batch model): one value, fed as it is
            constants[spec.name] = (rng.random(dims) if dims else np.ones(())).astype(spec.dtype)
            continue
        axis = dims.index(BATCH) if BATCH in dims else 0
        if axis:
            axes[spec.name] = axis
        rest = [d if isinstance(d, int) and d > 0 else 16 for i, d in enumerate(dims) if i != axis]
        shape = [n, *rest]  # samples first, as in a Split; feeding moves them to the batch axis
        if "int" in spec.dtype:
            inputs[spec.name] = rng.integers(0, 2, shape).astype(spec.dtype)
        else:
            inputs[spec.name] = rng.random(shape, dtype=np.float32).astype(spec.dtype)
    return Split(inputs, feeding=Feeding(constants, axes))


def user_import_paths() -> list[str]:
    """The folders on this process's import path that hold user code (not the interpreter's own)."""
    system = {sysconfig.get_path(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    paths = []
    for entry in sys.path:
        folder = os.path.abspath(entry or os.getcwd())
        if os.path.isdir(folder) and not any(s and folder.startswith(s) for s in system) and folder not in paths:
            paths.append(folder)
    return paths


def _error_line(stderr: str) -> str:
    """The worker's own error: the last exception line of its traceback (library messages continue on
    more lines, so the very last line is often only their tail), else its last line."""
    from compressor.errors import first_line

    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    for i in range(len(lines) - 1, -1, -1):
        if _EXCEPTION_LINE.match(lines[i]):
            return first_line(RuntimeError(lines[i]), 300)
    return lines[-1][:300] if lines else "no output"


def _result(proc: subprocess.CompletedProcess, what: str) -> dict[str, Any]:
    if proc.returncode != 0:
        tail = _error_line(proc.stderr)
        raise MeasurementError(f"{what} failed (exit {proc.returncode}): {tail}")
    lines = proc.stdout.strip().splitlines()
    try:
        result = json.loads(lines[-1])
    except (IndexError, ValueError):
        shown = lines[-1][:120] if lines else "nothing"
        raise MeasurementError(f"{what} printed no result (last line: {shown!r}); the worker was cut short.") from None
    if not isinstance(result, dict) or "p50_ms" not in result:
        raise MeasurementError(f"{what} printed {str(result)[:120]!r}, not a timing result.")
    return result


def measure(artifact: Artifact, runtime: str, device: str, batch_size: int, threads: int,
            settings: TimingSettings, samples: dict[str, np.ndarray] | Split, timeout_s: float = 600,
            trust: TrustPolicy | None = None) -> dict[str, Any]:
    """Time ``artifact`` on ``runtime:device`` at ``batch_size`` in a fresh process.

    The worker loads the model under ``trust`` (default: the policy in force here), so a model folder
    may name there only the code it may name here.
    """
    what = f"measuring {artifact.path} on {runtime}:{device} at batch {batch_size}"
    feeds = batch_feeds(artifact, samples, batch_size)
    request = {"artifact": artifact.to_dict(), "runtime": runtime, "device": device, "threads": threads,
               "batch_size": batch_size, "settings": asdict(settings)}
    result = _run_worker(request, feeds, what, threads, timeout_s, trust)
    result.update(runtime=runtime, device=device, batch_size=batch_size, threads=threads)
    return result


def measure_generation(artifact: Artifact, runtime: str, device: str, threads: int, settings: TimingSettings,
                       prompt: np.ndarray, new_tokens: int, timeout_s: float = 600,
                       trust: TrustPolicy | None = None) -> dict[str, Any]:
    """Greedy generation of ``new_tokens`` after ``prompt`` at batch 1 with the key/value cache, in a fresh
    process: cold start, prefill ms, decode ms per token (p50 / p90), tokens per second, peak RSS, the tokens."""
    what = f"measuring generation of {artifact.path} on {runtime}:{device}"
    request = {"kind": "generate", "artifact": artifact.to_dict(), "runtime": runtime, "device": device,
               "threads": threads, "batch_size": 1, "new_tokens": int(new_tokens), "settings": asdict(settings)}
    result = _run_worker(request, {"prompt": np.asarray(prompt, dtype=np.int64)}, what, threads, timeout_s, trust)
    result.update(runtime=runtime, device=device, batch_size=1, threads=threads)
    return result


def _run_worker(request_data: dict[str, Any], feeds: dict[str, np.ndarray], what: str, threads: int,
                timeout_s: float, trust: TrustPolicy | None) -> dict[str, Any]:
    """Run one worker process on ``request_data`` with ``feeds`` saved beside it; its one-line JSON result."""
    env = dict(os.environ)
    env.update({v: str(threads) for v in THREAD_VARS})
    with tempfile.TemporaryDirectory(prefix="compressor-bench-") as tmp:
        inputs = Path(tmp) / "inputs.npz"
        np.savez(inputs, **feeds)
        request = Path(tmp) / "request.json"
        request.write_text(json.dumps({**request_data, "inputs": str(inputs), "import_paths": user_import_paths(),
                                       "trust": (trust or current_trust()).to_dict()}))
        try:
            proc = subprocess.run([sys.executable, "-m", "compressor.measure.worker", str(request)], env=env,
                                  capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise MeasurementError(f"{what} took longer than {timeout_s:g} s and was stopped; "
                                   f"lower benchmark.max_seconds or the batch size.") from None
        except OSError as exc:
            raise MeasurementError(f"{what} could not start a worker process: {exc}.") from None
    return _result(proc, what)
