"""Per-operator profiles: a runtime's own profiler on one artifact at one batch size, in a fresh process.

ONNX Runtime's profiler (the optimized graph's nodes as they run) and torch.profiler (self time per
operator) are read by the runtime in ``backends`` (``Runtime.profile_ops``); this module runs it the
way a measurement runs: real samples tiled to the batch, the run's thread count, warm-up runs left
out, in a worker process (``python -m compressor.measure.profile REQUEST.json``) that loads the model
under the caller's trust policy and prints one JSON line.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from compressor.artifact import Artifact
from compressor.code import TrustPolicy, current_trust
from compressor.data import Split
from compressor.errors import MeasurementError


@dataclass(frozen=True)
class ProfileSettings:
    """How many runs a profile averages: ``runs`` after ``warmup_runs``; each phase stops early (after 1 warm-up
    run, 3 counted ones) past ``max_seconds``, so a slow model's profile stays short."""

    warmup_runs: int = 10
    runs: int = 50
    max_seconds: float = 3.0


def profiler_of(runtime: str) -> str | None:
    """The name of ``runtime``'s per-operator profiler this tool reads, or None where it has none."""
    from backends import get_runtime

    return get_runtime(runtime).profiler


def profile(artifact: Artifact, runtime: str, device: str, batch_size: int, threads: int,
            samples: dict[str, np.ndarray] | Split, settings: ProfileSettings = ProfileSettings(),
            timeout_s: float = 300, trust: TrustPolicy | None = None) -> dict[str, Any]:
    """``artifact``'s per-operator profile on ``runtime:device`` at ``batch_size``, taken in a fresh process.

    Returns ``{"profiler", "runtime", "device", "batch_size", "threads", "runs", "total_ms", "nodes"}``:
    the nodes (``{"node", "op", "kind", "ms"}``, mean ms per run) slowest first.
    """
    from compressor.measure.harness import THREAD_VARS, _error_line, batch_feeds, user_import_paths

    what = f"profiling {artifact.path} on {runtime}:{device} at batch {batch_size}"
    env = dict(os.environ)
    env.update({v: str(threads) for v in THREAD_VARS})
    with tempfile.TemporaryDirectory(prefix="compressor-profile-") as tmp:
        inputs = Path(tmp) / "inputs.npz"
        np.savez(inputs, **batch_feeds(artifact, samples, batch_size))
        request = Path(tmp) / "request.json"
        request.write_text(json.dumps({
            "artifact": artifact.to_dict(), "inputs": str(inputs), "runtime": runtime, "device": device,
            "threads": threads, "settings": asdict(settings), "import_paths": user_import_paths(),
            "trust": (trust or current_trust()).to_dict(),
        }))
        try:
            proc = subprocess.run([sys.executable, "-m", "compressor.measure.profile", str(request)], env=env,
                                  capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise MeasurementError(f"{what} took longer than {timeout_s:g} s and was stopped.") from None
        except OSError as exc:
            raise MeasurementError(f"{what} could not start a worker process: {exc}.") from None
    if proc.returncode != 0:
        raise MeasurementError(f"{what} failed (exit {proc.returncode}): {_error_line(proc.stderr)}")
    try:
        result = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise MeasurementError(f"{what} printed no result; the worker was cut short.") from None
    if not isinstance(result, dict) or not isinstance(result.get("nodes"), list):
        raise MeasurementError(f"{what} printed {str(result)[:120]!r}, not a profile.")
    result.update(runtime=runtime, device=device, batch_size=batch_size, threads=threads)
    return result


def _profile(req: dict[str, Any]) -> dict[str, Any]:
    from backends import get_runtime

    sys.path[:0] = [p for p in req.get("import_paths", []) if p not in sys.path]  # the caller's own code
    artifact = Artifact.from_dict(req["artifact"])
    feeds = dict(np.load(req["inputs"], allow_pickle=False))
    runtime = get_runtime(req["runtime"])
    settings = ProfileSettings(**req["settings"])
    nodes, runs = runtime.profile_ops(artifact, req["device"], req["threads"], feeds, settings.warmup_runs,
                                      settings.runs, settings.max_seconds)
    nodes = sorted(({**{k: v for k, v in n.items() if k != "median_ms"}, "ms": round(n["ms"], 5)} for n in nodes),
                   key=lambda n: -n["ms"])
    return {"profiler": runtime.profiler, "runs": runs, "total_ms": round(sum(n["ms"] for n in nodes), 5),
            "nodes": nodes}


def main(request_path: str) -> None:
    from compressor.code import trusting

    req = json.loads(Path(request_path).read_text())
    with trusting(TrustPolicy.from_dict(req.get("trust"))):  # what the caller trusts, nothing more
        result = _profile(req)
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1])
