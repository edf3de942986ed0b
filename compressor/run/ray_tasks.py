"""What runs inside a Ray worker: a variant's steps, a node's fingerprint, one measurement.

These are plain functions; ``compressor.run.executors`` wraps them as Ray tasks. A variant task
rebuilds the run's context from the pipeline (memoized per worker process), so it needs the
pipeline, the cache folder and the code the pipeline names to be reachable on its node: the
cache is a shared path (content-addressed and safe for concurrent writers), and what a task
returns is its ledger and the artifacts' records, never a model. A measurement task gets its
model's bytes through Ray's object store instead — a benchmark board rarely mounts the cache — and
checks them against the artifact's sha256 before it times them.
"""
from __future__ import annotations

import os
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

_CONTEXTS: dict[str, Any] = {}  # a worker process serves many tasks of one run: prepare once


def _use_paths(paths: list[str]) -> None:
    sys.path[:0] = [p for p in paths if p not in sys.path]


def job_context(job: dict[str, Any]) -> Any:
    """The run's context in this worker: the pipeline parsed, the data loaded, the reference scored."""
    from compressor.cache import cache_key
    from compressor.run.context import prepare
    from compressor.run.pipeline import parse_pipeline

    key = cache_key(job)
    if key not in _CONTEXTS:
        _use_paths(job["paths"])
        pipeline = parse_pipeline(job["spec"], Path(job["base_dir"]), source="pipeline (ray worker)")
        _CONTEXTS[key] = prepare(pipeline, Path(job["cache_dir"]), trust_code=job["trust_code"])
    return _CONTEXTS[key]


def node_info() -> dict[str, Any]:
    """Which node this is: Ray's node id, the host name."""
    import ray

    return {"node_id": ray.get_runtime_context().get_node_id(), "hostname": socket.gethostname()}


def run_variant_task(job: dict[str, Any], name: str, steps: list[Any]) -> dict[str, Any]:
    """Run one variant (``steps`` as written in the file) through the shared cache; its ledger and artifacts."""
    from compressor.run.step import run_variant

    ctx = job_context(job)
    outcome = run_variant(ctx, name, ctx.pipeline.build_steps(f"variant '{name}'", steps))
    return {"ledger": outcome.ledger, "chain": [a.to_dict() for a in outcome.chain], "error": outcome.error,
            "traceback": outcome.traceback, "refused": outcome.refused, "node": node_info()}


def probe_task() -> dict[str, Any]:
    """This node's id and what a measurement's cache key needs of it (the machine fingerprint)."""
    from compressor.measure.environment import machine_fingerprint

    return {**node_info(), "machine": machine_fingerprint()}


def artifact_files(path: Path) -> dict[str, bytes]:
    """A model's files by path relative to it ('' for a single file), to send by value."""
    path = Path(path)
    if path.is_file():
        return {"": path.read_bytes()}
    return {str(f.relative_to(path)): f.read_bytes() for f in sorted(path.rglob("*")) if f.is_file()}


def _materialize(files: dict[str, bytes], name: str, folder: Path) -> Path:
    from compressor.cache import path_inside

    if set(files) == {""}:
        target = folder / name
        target.write_bytes(files[""])
        return target
    root = folder / name
    for rel, data in files.items():
        dst = path_inside(root, rel, "artifact file")  # a name never leaves the folder
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(data)
    return root


def measure_task(artifact: dict[str, Any], files: dict[str, bytes], target: str, batch: int, threads: int,
                 settings: dict[str, Any], samples: Any, trust: dict[str, Any], paths: list[str]) -> dict[str, Any]:
    """Time a model sent by value on this node, through the harness (a fresh process); the row and the node."""
    from backends import parse_target
    from compressor.artifact import Artifact, content_sha256
    from compressor.code import TrustPolicy
    from compressor.errors import MeasurementError
    from compressor.measure.environment import fingerprint
    from compressor.measure.harness import measure
    from compressor.measure.timing import TimingSettings

    _use_paths(paths)
    t = parse_target(target)
    with tempfile.TemporaryDirectory(prefix="compressor-ray-") as tmp:
        path = _materialize(files, Path(artifact["path"]).name, Path(tmp))
        if content_sha256(path) != artifact["sha256"]:
            raise MeasurementError(f"the model sent to node {socket.gethostname()} does not hash to its sha256 "
                                   f"{artifact['sha256'][:16]}; it was damaged on the way: run again.")
        model = Artifact.from_dict({**artifact, "path": str(path)})
        raw = measure(model, t.runtime, t.device, batch, threads, TimingSettings(**settings), samples,
                      trust=TrustPolicy.from_dict(trust))
    return {"raw": raw, "node": {**node_info(), "pid": os.getpid(), "environment": fingerprint()}}
