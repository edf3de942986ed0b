"""One measurement in a fresh process: ``python -m compressor.measure.worker REQUEST.json``.

A fresh process per measurement keeps runtimes from sharing thread pools and makes peak RSS
and cold start mean something. The result is printed as one JSON line on stdout.
"""
from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

import numpy as np


def _rss_mb() -> float:
    """Peak resident memory of this process in MiB.

    VmHWM belongs to this process image; ru_maxrss would carry over the parent's peak across
    fork + exec on Linux, so it is only the fallback where /proc is missing.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main(request_path: str) -> None:
    from compressor.code import TrustPolicy, trusting

    req = json.loads(Path(request_path).read_text())
    with trusting(TrustPolicy.from_dict(req.get("trust"))):  # what the caller trusts, nothing more
        _measure(req)


def _measure(req: dict) -> None:
    from backends import get_runtime
    from compressor.artifact import Artifact
    from compressor.measure.timing import TimingSettings, time_session

    sys.path[:0] = [p for p in req.get("import_paths", []) if p not in sys.path]  # the caller's own code
    artifact = Artifact.from_dict(req["artifact"])
    feeds = dict(np.load(req["inputs"], allow_pickle=False))
    runtime = get_runtime(req["runtime"])
    runtime_import = time.perf_counter_ns()
    runtime.preload(artifact)  # import cost is not part of cold start
    base_rss = _rss_mb()
    if req.get("kind") == "generate":
        _generate(req, artifact, runtime, base_rss, runtime_import)
        return
    t0 = time.perf_counter_ns()
    session = runtime.open(artifact, device=req["device"], threads=req["threads"])
    session.run(feeds)
    session.sync()
    cold_ms = (time.perf_counter_ns() - t0) / 1e6
    timing = time_session(session, feeds, TimingSettings(**req["settings"]))
    batch = req["batch_size"]
    result = timing.to_dict()
    result.update(
        cold_start_ms=cold_ms,
        peak_rss_mb=_rss_mb(),
        rss_before_open_mb=base_rss,
        throughput_per_s=batch * 1000.0 / timing.mean_ms if timing.mean_ms else 0.0,
        import_ms=(t0 - runtime_import) / 1e6,
    )
    session.close()
    print(json.dumps(result))


def _generate(req: dict, artifact: object, runtime: object, base_rss: float, runtime_import: int) -> None:
    """Greedy generation with the key/value cache: cold start (open + first prefill), prefill and decode timings."""
    from compressor.measure.generation import lm_for, open_lm, time_generation
    from compressor.measure.timing import TimingSettings

    prompt = np.load(req["inputs"], allow_pickle=False)["prompt"]
    t0 = time.perf_counter_ns()
    session = open_lm(artifact, runtime, req["device"], req["threads"])
    lm = lm_for(session, artifact)
    lm.prefill(prompt)
    cold_ms = (time.perf_counter_ns() - t0) / 1e6
    result = time_generation(lm, prompt, req["new_tokens"], TimingSettings(**req["settings"]))
    result.update(cold_start_ms=cold_ms, peak_rss_mb=_rss_mb(), rss_before_open_mb=base_rss,
                  import_ms=(t0 - runtime_import) / 1e6)
    session.close()
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1])
