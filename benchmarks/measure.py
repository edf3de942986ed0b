"""Measure one artifact on one target and batch size, in a fresh subprocess."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.timing import TimingSettings
from compressor.artifact import Artifact
from compressor.errors import CompressorError

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
               "TF_NUM_INTEROP_THREADS")
REPO_ROOT = Path(__file__).resolve().parent.parent


class MeasurementError(CompressorError):
    """The measurement subprocess failed."""


def batch_feeds(artifact: Artifact, samples: dict[str, np.ndarray], batch_size: int) -> dict[str, np.ndarray]:
    """Real samples tiled (or cut) to ``batch_size``, mapped to the model's inputs."""
    from compressor.data import feeds_for

    n = len(next(iter(samples.values())))
    idx = np.arange(batch_size) % n
    return feeds_for(artifact.signature, {k: v[idx] for k, v in samples.items()})


def random_samples(artifact: Artifact, n: int = 64, seed: int = 0) -> dict[str, np.ndarray]:
    """Inputs drawn to fit the signature, for benchmarking a model without data."""
    rng = np.random.default_rng(seed)
    out = {}
    for spec in artifact.signature.inputs:
        shape = [n if i == 0 else (d if isinstance(d, int) and d > 0 else 16) for i, d in enumerate(spec.shape)]
        if "int" in spec.dtype:
            out[spec.name] = rng.integers(0, 2, shape).astype(spec.dtype)
        else:
            out[spec.name] = rng.random(shape, dtype=np.float32).astype(spec.dtype)
    return out


def measure(artifact: Artifact, runtime: str, device: str, batch_size: int, threads: int,
            settings: TimingSettings, samples: dict[str, np.ndarray], timeout_s: float = 600) -> dict[str, Any]:
    """Time ``artifact`` on ``runtime:device`` at ``batch_size`` in a fresh process."""
    feeds = batch_feeds(artifact, samples, batch_size)
    env = dict(os.environ)
    env.update({v: str(threads) for v in THREAD_VARS})
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH", "")]))
    with tempfile.TemporaryDirectory(prefix="compressor-bench-") as tmp:
        inputs = Path(tmp) / "inputs.npz"
        np.savez(inputs, **feeds)
        request = Path(tmp) / "request.json"
        request.write_text(json.dumps({
            "artifact": artifact.to_dict(), "inputs": str(inputs), "runtime": runtime, "device": device,
            "threads": threads, "batch_size": batch_size, "settings": asdict(settings),
        }))
        proc = subprocess.run([sys.executable, "-m", "benchmarks.worker", str(request)], env=env,
                              capture_output=True, text=True, timeout=timeout_s, cwd=REPO_ROOT)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1][:300]
        raise MeasurementError(f"measuring {artifact.path} on {runtime}:{device} failed: {tail}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result.update(runtime=runtime, device=device, batch_size=batch_size, threads=threads)
    return result
