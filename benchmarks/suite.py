"""Helpers the benchmark suites share: an ORT session with the toolchain's options, markdown tables, side-by-side p50."""
from __future__ import annotations

from pathlib import Path
from typing import Any


def ort_session(path: str, threads: int = 1) -> Any:
    """An ONNX Runtime CPU session with the toolchain's standard options."""
    import onnxruntime as ort

    from compressor.frameworks._onnx import session_options

    return ort.InferenceSession(path, session_options(threads), providers=["CPUExecutionProvider"])


def markdown_table(head: list[str], rows: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        return f"{v:.4f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def onnx_rounds(paths: dict[str, Any], feeds: dict[int, dict[str, Any]], rounds: int) -> dict[int, dict[str, list[float]]]:
    """Every round's p50 (ms) per batch and model, all models of one batch timed interleaved, 1 thread."""
    from compressor.measure.compare import interleaved_rounds

    sessions = {n: ort_session(str(p)) for n, p in paths.items()}
    out = {}
    for batch, feed in feeds.items():
        runs = {n: (lambda s=s: s.run(None, feed)) for n, s in sessions.items()}
        out[batch] = interleaved_rounds(runs, rounds=rounds)
    return out


def ratio_cell(model: list[float], baseline: list[float]) -> str:
    """The median of the per-round ratios model / baseline (rounds timed side by side), with their range."""
    import statistics

    ratios = [m / b for m, b in zip(model, baseline)]
    return f"{statistics.median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f})"


def run_variants(raw: dict[str, Any], base: Path, out: Path, cache: Path) -> dict[str, dict[str, Any]]:
    """Run a pipeline mapping (no benchmarks); return its variants by name, failing loudly."""
    from compressor.run import run_pipeline
    from compressor.run.pipeline import parse_pipeline

    def progress(kind: str, **info: Any) -> None:
        if kind in ("pass_progress", "variant_done"):
            print(f"  {info.get('variant')}: {info.get('message') or 'done'}", flush=True)

    results = run_pipeline(parse_pipeline(raw, base), out, cache_dir=cache, benchmark=False, on_event=progress)
    failed = {v["name"]: v["error"] for v in results["variants"] if v["status"] != "ok"}
    if failed:
        raise SystemExit(f"variants failed: {failed}")
    return {v["name"]: v for v in results["variants"]}
