"""Where the int8 digits CNN spends its time: ONNX Runtime's per-operator profile, 1 thread.

Builds the fp32, our int8 (quantize.onnx.static) and onnxruntime's default quantize_static models
of the digits CNN (as benchmarks.peer_static_quant does), runs each N times at the given batch
with ORT's profiler on, and prints the mean kernel time per node of the optimized graph (what
actually runs after ORT's QDQ fusions and layout changes), with each node's share and its MACs.

    python -m benchmarks.profile_ops [--batch 32] [--runs 200]
"""
from __future__ import annotations

import argparse
import json
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np


def profile(path: Path, feed: dict[str, np.ndarray], runs: int, prefix: Path) -> dict[str, tuple[str, float]]:
    """node name -> (op type, mean kernel microseconds per run)."""
    import onnxruntime as ort

    from compressor.frameworks._onnx import session_options

    opts = session_options(threads=1, profile=True)
    opts.profile_file_prefix = str(prefix)
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    for _ in range(10):
        session.run(None, feed)
    session.end_profiling()
    opts = session_options(threads=1, profile=True)
    opts.profile_file_prefix = str(prefix)
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    for _ in range(runs):
        session.run(None, feed)
    events = json.loads(Path(session.end_profiling()).read_text())
    per_node: dict[str, list] = defaultdict(lambda: ["", 0.0])
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            node = per_node[e["name"][: -len("_kernel_time")]]
            node[0] = e["args"]["op_name"]
            node[1] += e["dur"] / runs
    return {k: (v[0], v[1]) for k, v in per_node.items()}


def main() -> None:
    from benchmarks.peer_static_quant import build
    from benchmarks.suite import markdown_table
    from compressor.measure.environment import cpu_info

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="profile-ops-"))
    models, data = build(out)
    x = data.split("evaluation").inputs["x"]
    feed = {"input": np.ascontiguousarray(x[np.arange(args.batch) % len(x)])}
    cpu = cpu_info()
    print(f"CPU: {cpu['model']}; ISA: {', '.join(cpu['isa'])}; 1 thread; batch {args.batch}; "
          f"mean kernel time over {args.runs} profiled runs (the profiler adds a little overhead)\n")
    for name, path in models.items():
        nodes = profile(path, feed, args.runs, out / "prof")
        total = sum(t for _, t in nodes.values())
        rows = [[node, op, t / 1000, f"{100 * t / total:.1f}%"] for node, (op, t) in
                sorted(nodes.items(), key=lambda kv: -kv[1][1])]
        print(f"### {name}: {total / 1000:.3f} ms of kernel time per run\n")
        print(markdown_table(["node (optimized graph)", "op", "ms", "share"], rows) + "\n")


if __name__ == "__main__":
    main()
