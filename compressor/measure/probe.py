"""Quick measurements taken in this process, for passes that choose from measurements.

A pass may not open a runtime itself (passes sit above ``backends``), so the per-node precision
choice and the weight-only block-size choice ask here: a model's per-operator profile from the
runtime's own profiler (``Runtime.profile_ops``, the one reader of ONNX Runtime's profile trace),
and several models timed side by side in interleaved rounds (``compare.interleaved_p50``), both on
the pipeline's first target. Unlike ``profile.profile`` these run in the caller's process: a pass
profiles tens of trial models, and a fresh process each would cost more than the profile.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from compressor.artifact import Artifact
from compressor.formats import Format
from compressor.measure.timing import TimingSettings

QUICK = TimingSettings(warmup_runs=2, warmup_seconds=0.0, min_runs=5, min_seconds=0.1, max_seconds=3.0)


@dataclass(frozen=True)
class ProbeTarget:
    """Where a pass measures: ``runtime:device`` (the pipeline's first target, or ORT CPU where that target
    cannot run the pass's format or is not usable here), with the reason when it is not the one asked."""

    runtime: str
    device: str
    asked: str
    note: str | None = None

    @property
    def name(self) -> str:
        return f"{self.runtime}:{self.device}"

    def to_dict(self) -> dict[str, Any]:
        out = {"measured_on": self.name, "target": self.asked}
        return {**out, "note": self.note} if self.note else out


def probe_target(target: str, fmt: Format) -> ProbeTarget:
    """Where to measure a ``fmt`` model for ``target`` (``runtime:device``): that target when its runtime runs
    ``fmt`` and the device is usable here, else ONNX Runtime's CPU provider, with the reason."""
    from backends import get_runtime, parse_target

    t = parse_target(target)
    rt = get_runtime(t.runtime)
    if not rt.can_run(fmt.value):
        return ProbeTarget("onnxruntime", "cpu", target, f"{t.runtime} does not run {fmt.value} models; "
                           f"measured on onnxruntime:cpu (the model is converted after this pass)")
    if t.device not in rt.available_devices():
        return ProbeTarget(t.runtime, "cpu", target, f"{t.runtime}:{t.device} is not usable on this machine; "
                           f"measured on {t.runtime}:cpu")
    return ProbeTarget(t.runtime, t.device, target)


def _artifact(path: Path, fmt: Format) -> Artifact:
    from compressor.artifact import Signature

    return Artifact(fmt, Path(path), Signature(()), sha256="probe")  # the runtimes read the path alone


def profile_nodes(path: Path, fmt: Format, where: ProbeTarget, feed: dict[str, np.ndarray],
                  warmup_runs: int = 1, runs: int = 30, max_seconds: float = 0.3) -> list[dict[str, Any]]:
    """``[{"node", "op", "kind", "ms"}]``: each node's mean time per run from the runtime's profiler, 1 thread."""
    from backends import get_runtime

    nodes, _ = get_runtime(where.runtime).profile_ops(_artifact(path, fmt), where.device, 1, feed, warmup_runs,
                                                      runs, max_seconds)
    return nodes


def side_by_side(paths: dict[str, Path], fmt: Format, where: ProbeTarget, feeds: dict[int, dict[str, np.ndarray]],
                 rounds: int = 3, settings: TimingSettings = QUICK) -> dict[str, float]:
    """Each model's p50 (ms) summed over the batch sizes of ``feeds``, timed in interleaved rounds, 1 thread."""
    from backends import get_runtime
    from compressor.measure.compare import interleaved_p50

    rt = get_runtime(where.runtime)
    sessions = {k: rt.open(_artifact(p, fmt), where.device, 1) for k, p in paths.items()}
    try:
        total = dict.fromkeys(paths, 0.0)
        for feed in feeds.values():
            runs = {k: (lambda s=s: (s.run(feed), s.sync())) for k, s in sessions.items()}
            p50 = interleaved_p50(runs, rounds, settings)
            total = {k: total[k] + p50[k] for k in total}
        return total
    finally:
        for s in sessions.values():
            s.close()
