"""``quantize.onnx.weight_only`` with ``block_size: auto`` / ``algorithm: auto`` (the default when neither is set).

Candidates: each algorithm (rtn and hqq; gptq only when named) at each block size of 32 / 64 / 128 that
divides the input width K of every weight MatMul (rtn and gptq also need K / block even: ORT's copy of
their code fails on an odd count). Each candidate is quantized, scored on the evaluation split (the
pipeline's metric drop and the output error vs the float model) and profiled by the runtime's own
profiler at the pipeline's batch sizes on its first target. The fastest within the budget (by its
profile, as a share of the float model's time, batch sizes weighted alike) wins (with none within, the
fastest of those within half the budget of the most accurate, and the ledger says so); then each MatMul
whose float kernel beats its MatMulNBits kernel by more than ``MARGIN`` (``precision.speed_choice``,
the neutral rule of ``nodes: auto``) is kept float in a mixed candidate. The winner, the runner-up and
the mixed candidate are re-measured side by side and the fastest within budget kept. The ledger
lists every candidate's and every MatMul's figures.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from compressor.artifact import Artifact
from compressor.errors import CompressorError, PassError
from compressor.passes.base import PassContext
from compressor.passes.quantize.precision import Unit, weighted_costs, speed_choice

BLOCK_SIZES = (32, 64, 128)
ALGORITHMS = ("rtn", "hqq")
MARGIN = 0.1


def weight_matmuls(path: Path, exclude: list[str]) -> list[tuple[str, int]]:
    """(name, K) of each named MatMul with a constant 2-D weight, not excluded, in graph order."""
    from compressor.frameworks._onnx import load_onnx

    model = load_onnx(path, load_weights=False)
    dims = {i.name: list(i.dims) for i in model.graph.initializer}
    return [(n.name, dims[n.input[1]][0]) for n in model.graph.node
            if n.op_type == "MatMul" and n.name and n.name not in exclude and len(dims.get(n.input[1], [])) == 2]


def candidates(config: Any, ks: list[int]) -> list[tuple[str, int]]:
    """(algorithm, block size) pairs to try: the named ones, or auto's, whose blocks fit every K."""
    algorithms = ALGORITHMS if config.algorithm in (None, "auto") else (config.algorithm,)
    sizes = BLOCK_SIZES if config.block_size in (None, "auto") else (config.block_size,)
    out = []
    for algo in algorithms:
        for size in sizes:
            even = algo in ("rtn", "gptq")
            if all(k % size == 0 and (not even or (k // size) % 2 == 0) for k in ks):
                out.append((algo, size))
    return out or [(algorithms[0], min(sizes))]  # none fits every K: the smallest block (ORT pads the rest)


def run_weight_auto(artifact: Artifact, ctx: PassContext, config: Any, dst: Path, split: Any) -> dict[str, Any]:
    """Quantize every candidate, score and profile it, write the chosen one to ``dst``; the ledger's account."""
    from compressor.formats import Format
    from compressor.measure.probe import probe_target
    from compressor.passes.quantize import _onnx_precision as ox
    from compressor.passes.quantize._onnx_nbits import quantize_weight_only
    from compressor.passes.quantize.onnx_static import scorer

    src = Path(artifact.path)
    matmuls = weight_matmuls(src, config.exclude_nodes)
    units = [Unit(name, "MatMul", (name,)) for name, _ in matmuls]
    lookup = {f"{name}{suffix}": name for name, _ in matmuls for suffix in ("", f"_Q{config.bits}")}
    calibration = ctx.data.split("calibration", needed_by="pass 'quantize.onnx.weight_only'")
    feeds = ox.batch_feeds(calibration, artifact.signature, ctx.batch_sizes)
    where = probe_target(ctx.target, Format.ONNX)
    score = scorer(artifact, ctx)
    c_float = ox.profile_costs(src, feeds, lookup, where)
    weights = {b: 1.0 / max(t, 1e-9) for b, t in c_float.get("_total", {}).items()}

    def make(name: str, algorithm: str, block_size: int, exclude: list[str]) -> dict[str, Any]:
        row: dict[str, Any] = {"candidate": name, "algorithm": algorithm, "block_size": block_size}
        path = ctx.work_dir / f"wo-{name}.onnx"
        settings = config.model_copy(update={"algorithm": algorithm, "block_size": block_size,
                                             "exclude_nodes": [*config.exclude_nodes, *exclude]})
        try:
            row["report"] = quantize_weight_only(src, path, settings, split, artifact.signature)
        except CompressorError as exc:  # a candidate the quantizer refuses is a result, not the pass's failure
            return {**row, "status": "failed", "why": str(exc)[:300]}
        s = score(path)
        costs = ox.profile_costs(path, feeds, lookup, where)
        share = sum(t * weights.get(b, 0.0) for b, t in costs["_total"].items()) / max(len(weights), 1)
        return {**row, "status": "ok", "path": path, "costs": costs, "drop": round(s.drop, 6),
                "output_error": float(f"{s.output_error:.4g}"), "time_share_of_float": round(share, 4),
                "profile_total_us": {str(b): t for b, t in costs["_total"].items()},
                "within_budget": s.drop <= ctx.max_drop}

    rows = []
    for algorithm, block_size in candidates(config, [k for _, k in matmuls]):
        ctx.say(f"weight-only candidate {algorithm} block {block_size}")
        rows.append(make(f"{algorithm}-b{block_size}", algorithm, block_size, []))
    ok = [r for r in rows if r["status"] == "ok"]
    if not ok:
        raise PassError(f"pass 'quantize.onnx.weight_only': every auto candidate failed "
                              f"({rows[0]['why']}); set block_size and algorithm explicitly.")
    best, fits = choose(ok, ctx.max_drop)
    if not fits:
        return _finish(rows, best, [], None, dst, where, c_float, "no candidate is within the budget: the fastest of "
                       "those within half the budget of the most accurate kept", _matmul_rows(units, best["costs"], c_float, [], []))
    slow = speed_choice(units, weighted_costs(best["costs"], weights), weighted_costs(c_float, weights), MARGIN)
    finalists = {"fastest": best, **({"runner_up": fits[1]} if len(fits) > 1 else {})}
    if slow:
        mixed = make(f"{best['candidate']}-mixed", best["algorithm"], best["block_size"], slow)
        rows.append(mixed)
        if mixed["status"] == "ok" and mixed["within_budget"]:
            finalists["mixed"] = mixed
    remeasured = None
    if len(finalists) > 1:
        ms = ox.side_by_side_many({k: r["path"] for k, r in finalists.items()}, feeds, where)
        remeasured = {"p50_ms_summed_over_batches": {finalists[k]["candidate"]: round(v, 4) for k, v in ms.items()}}
        best = finalists[min(ms, key=ms.get)]
    floats = slow if best["candidate"].endswith("-mixed") else []
    return _finish(rows, best, floats, remeasured, dst, where, c_float, "the fastest within the budget, re-measured",
                   _matmul_rows(units, best["costs"], c_float, floats, slow))


def choose(ok: list[dict[str, Any]], max_drop: float) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The fastest candidate (by ``time_share_of_float``) within the budget, and those within it fastest first;
    with none within, the fastest of those within half the budget of the most accurate (and no list)."""
    fits = sorted((r for r in ok if r["drop"] <= max_drop), key=lambda r: r["time_share_of_float"])
    if fits:
        return fits[0], fits
    least = min(r["drop"] for r in ok)
    return min((r for r in ok if r["drop"] <= least + max_drop / 2), key=lambda r: r["time_share_of_float"]), []


def _matmul_rows(units: list[Unit], c_int4: dict, c_float: dict, floats: list[str], slow: list[str]) -> list[dict[str, Any]]:
    rows = []
    for u in units:
        q, f = c_int4.get(u.name), c_float.get(u.name)
        why = ("float kernel faster than MatMulNBits by more than " f"{MARGIN:.0%} (profile), confirmed side by side"
               if u.name in floats else "faster in float alone, but the mixed model was not faster when re-measured"
               if u.name in slow else "not found in the runtime's profile" if q is None or f is None
               else "MatMulNBits faster (or within the margin)")
        rows.append({"node": u.name, "low_bit_us": _by_batch(q), "float_us": _by_batch(f),
                     "precision": "float" if u.name in floats else "low-bit", "why": why})
    return rows


def _by_batch(costs: dict | None) -> dict[str, float] | None:
    return None if costs is None else {str(b): us for b, us in costs.items()}


def _finish(rows: list[dict[str, Any]], best: dict[str, Any], floats: list[str], remeasured: dict | None, dst: Path,
            where: Any, c_float: dict, why: str, matmuls: list[dict[str, Any]]) -> dict[str, Any]:
    Path(best["path"]).replace(dst)
    listed = [{k: v for k, v in r.items() if k not in ("path", "costs", "report")} for r in rows]
    account = {"mode": "auto", **where.to_dict(), "chosen": best["candidate"], "algorithm": best["algorithm"],
               "block_size": best["block_size"], "float_matmuls": floats, "why": why,
               "float_profile_total_us": _by_batch(c_float.get("_total")), "candidates": listed, "matmuls": matmuls}
    if remeasured:
        account["remeasured"] = remeasured
    return {**best["report"], "auto": account}
