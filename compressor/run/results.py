"""results.json (DESIGN section 5) built from a run's outcomes, and the run folder written atomically."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from compressor.artifact import Artifact, gzip_size
from compressor.cache import atomic_write_text, path_inside, temp_sibling
from compressor.errors import ConfigError
from compressor.frameworks import format_info
from compressor.run.context import RunContext
from compressor.run.speed import Paired, reference_checks, sibling_checks, speed_checks
from compressor.run.step import VariantOutcome
from compressor.run.why import Profiles

SCHEMA_VERSION = 1


def export_path(variant: str, artifact: Artifact) -> str:
    """Where a variant's model goes in the run folder, relative to it."""
    path = Path(artifact.path)
    own = path.suffix if path.is_file() else ""  # a Keras artifact may be .h5 or .keras
    name = f"{variant}{own or format_info(artifact.format).suffix}"
    if "/" in name or "\\" in name or name.startswith("."):  # names are checked in the pipeline too
        raise ConfigError(f"variant name '{variant}' cannot become a file name under artifacts/; name it with "
                          f"letters, digits, '.', '_', '-', '+' (not starting with '.').")
    return f"artifacts/{name}"


def _variant(ctx: RunContext, o: VariantOutcome, benches: dict, cpu: dict[str, Any],
             siblings: dict[str, tuple[list[dict], list[str]]], paired: Paired,
             profiles: Profiles | None, generation: dict[str, dict]) -> dict[str, Any]:
    v: dict[str, Any] = {"name": o.name, "passes": o.pass_names, "ledger": o.ledger, "status": "ok"}
    if o.error:
        v.update(status="failed", error=o.error)
        if o.refused:
            v["bad_input"] = True
    if o.artifact is None:
        v.update(metric=None, metric_drop=None, within_budget=False, benchmarks=[], warnings=[])
        return v
    a = o.artifact
    value = o.ledger[-1]["metric"] if o.ledger else ctx.reference_metric
    v.update(
        artifact={"format": a.format.value, "path": export_path(o.name, a), "size_bytes": a.size_bytes,
                  "gzip_bytes": gzip_size(a.path), "sha256": a.sha256},
        metric=value, metric_drop=ctx.metric.drop(ctx.reference_metric, value),
    )
    v["within_budget"] = ctx.budget.allows(v["metric_drop"], ctx.reference_metric)
    if len(ctx.evaluator.scored) > 1:  # each scored output's value; the metric is the worst of them
        v["metric_per_output"] = ctx.metric_detail(a)
    v["benchmarks"] = benches.get(a.sha256, [])
    v["speed_checks"], v["warnings"] = speed_checks(o, benches, cpu, paired, profiles)
    found = reference_checks(o, benches, paired)
    if found:
        v["reference_checks"] = found
    if o.name in siblings:
        v["sibling_checks"], more = siblings[o.name]
        v["warnings"] += more
    if a.sha256 in generation:  # a language model: greedy agreement, prefill and decode figures
        from compressor.run.generation import decode_checks

        v["generation"] = generation[a.sha256]
        v["decode_checks"], more = decode_checks(o, generation, cpu)
        v["warnings"] += more
    return v


def data_sizes(ctx: RunContext, outcomes: list[VariantOutcome]) -> dict[str, Any]:
    """How many samples were scored, and how many calibrated or trained the passes that read them."""
    sizes: dict[str, Any] = {"evaluation_samples": len(ctx.evaluator.split),
                             "evaluation_batch_size": ctx.evaluator.batch_size}
    used = {role for o in outcomes for p in o.passes for role in p.reads()}
    for role in ("calibration", "training"):
        if role in used:
            sizes[f"{role}_samples"] = len(ctx.data.split(role))
    return sizes


def build_results(ctx: RunContext, outcomes: list[VariantOutcome], benches: dict, skipped: list[dict],
                  env: dict[str, Any], paired: Paired | None = None,
                  generation: dict[str, dict] | None = None) -> dict[str, Any]:
    """The results dict of a run: reference, variants with their ledgers, benchmarks, speed checks (from
    ``paired`` rounds where measured), environment.

    ``generation`` (language models): per artifact sha256, its greedy agreement and generation timings.
    """
    ref = ctx.reference
    cpu = env.get("cpu", {})
    paired = paired or {}
    profiles = Profiles.of(ctx) if benches else None  # a flagged step's "why", from its profile (run/why.py)
    siblings = sibling_checks(outcomes, benches, cpu, paired, profiles)
    generation = generation or {}
    results = {
        "schema": SCHEMA_VERSION,
        "pipeline": ctx.spec.name,
        "metric": {"name": ctx.metric.name, "higher_is_better": ctx.metric.higher_is_better,
                   "outputs": list(ctx.evaluator.scored)},
        "data": data_sizes(ctx, outcomes),
        "budget": ctx.budget.model_dump(),
        "reference": {"format": ref.format.value, "source": ctx.spec.model.path or ctx.spec.model.factory,
                      "size_bytes": ref.size_bytes, "gzip_bytes": gzip_size(ref.path), "sha256": ref.sha256,
                      "metric": ctx.reference_metric, "benchmarks": benches.get(ref.sha256, [])},
        "variants": [_variant(ctx, o, benches, cpu, siblings, paired, profiles, generation) for o in outcomes],
        "skipped_targets": skipped,
        "warnings": list(ctx.cache.warnings),  # cache entries that failed their content check
        "environment": env,
    }
    if ref.sha256 in generation:
        results["reference"]["generation"] = generation[ref.sha256]
    return results


def write_run(out_dir: Path, results: dict[str, Any], outcomes: list[VariantOutcome]) -> None:
    """Copy each variant's model into ``artifacts/``, then write results.json (the reports are built from it)."""
    for o in outcomes:
        if o.artifact is not None:
            _copy_atomic(Path(o.artifact.path), path_inside(out_dir, export_path(o.name, o.artifact), "variant"))
    write_results(out_dir, results)


def write_results(out_dir: Path, results: dict[str, Any]) -> None:
    """results.json, written atomically."""
    atomic_write_text(out_dir / "results.json", json.dumps(results, indent=2, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def _copy_atomic(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(dst)  # unique to this process: two writers never share a temp name
    try:
        if src.is_dir():
            shutil.copytree(src, tmp)
        else:
            shutil.copyfile(src, tmp)
        if dst.is_dir():
            shutil.rmtree(dst)
        tmp.replace(dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink(missing_ok=True)
        raise


def failed_benchmarks(results: dict[str, Any]) -> list[str]:
    """One line per failed measurement: which model, target and batch, and why."""
    rows = [("reference", b) for b in results.get("reference", {}).get("benchmarks", [])]
    rows += [(v["name"], b) for v in results["variants"] for b in v.get("benchmarks", [])]
    rows += [(f"{v.get('name', 'reference')} generation", m) for v in [results.get("reference", {}), *results["variants"]]
             for m in v.get("generation", {}).get("measurements", [])]
    return [f"{name} on {b['runtime']}:{b['device']} batch {b['batch_size']}: {b['error']}"
            for name, b in rows if b.get("error")]


def exit_code(results: dict[str, Any], strict: bool) -> int:
    """0 when every variant completed (and, with strict, at least one is within budget).

    2 when a pass refused its input before any work (bad input), 1 when a variant failed otherwise,
    a package of the pipeline's ``package:`` section could not be built, or a measurement failed (a benchmark row with an error is a failure, not a gap in the table).
    """
    if any(v.get("bad_input") for v in results["variants"]):
        return 2
    if any(v["status"] != "ok" for v in results["variants"]) or failed_benchmarks(results):
        return 1
    if any(p.get("error") for p in results.get("packages", [])):  # a package the pipeline asked for was not built
        return 1
    if strict and not any(v["within_budget"] for v in results["variants"]):
        return 3
    return 0
