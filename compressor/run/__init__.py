"""A run: prepare a frozen context, apply every variant's steps, measure, write the results.

``run_pipeline`` is the whole job; its stages are separate modules that take the context:
``context`` (prepare), ``step`` (a pass through the cache, verified), ``measurements`` (the
harness on every target), ``paired`` (interleaved rounds for each compared pair), ``speed`` (speed checks), ``results`` (results.json and the folder).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from compressor.run.context import Event
    from compressor.run.pipeline import Pipeline


def run_pipeline(pipeline: Pipeline, out_dir: Path, cache_dir: Path | None = None,
                 on_event: Event | None = None, benchmark: bool = True, trust_code: bool = False,
                 remeasure: bool = False) -> dict[str, Any]:
    """Run every variant of ``pipeline`` into ``out_dir`` (artifacts/, results.json); return the results dict.

    ``trust_code`` lets model folders name any code (--trust-code); otherwise only the code the pipeline names.
    The run holds ``out_dir``'s lock throughout: a second run into the same folder is refused
    (``RunFolderInUse``). ``cache_dir`` defaults to the shared cache (``default_cache_dir``:
    $COMPRESSOR_CACHE or ~/.cache/compressor). Measurements are reused from the cache when the
    artifact, target, settings and machine are the same; ``remeasure`` takes fresh ones.
    The reports are a layer above: ``compressor.run_pipeline`` and the CLI write them from the results.
    """
    from compressor.cache import default_cache_dir
    from compressor.measure.environment import fingerprint
    from compressor.run.context import prepare, quiet
    from compressor.run.executors import make_executor
    from compressor.run.lock import run_folder_lock
    from compressor.run.measurements import collect
    from compressor.run.paired import collect_paired
    from compressor.run.provenance import provenance, write_samples
    from compressor.run.results import build_results, write_run
    from compressor.run.step import refuse_early

    out_dir = Path(out_dir)
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    with run_folder_lock(out_dir):
        ctx = prepare(pipeline, cache_dir, on_event or quiet, trust_code)
        refuse_early(ctx, pipeline)
        executor = make_executor(pipeline, cache_dir, trust_code)  # local, or Ray tasks on a cluster
        try:
            outcomes = executor.run_variants(ctx, pipeline.variants)
            benches, skipped = collect(ctx, outcomes, remeasure, executor.measure) if benchmark else ({}, [])
        finally:
            executor.close()
        paired = collect_paired(ctx, outcomes, benches, remeasure) if benchmark else {}
        generation = {}
        if pipeline.spec.generation is not None:
            from compressor.run.generation import collect_generation

            generation = collect_generation(ctx, outcomes, remeasure, timed=benchmark)
        results = build_results(ctx, outcomes, benches, skipped, fingerprint(), paired, generation)
        results["executor"] = executor.kind
        results["provenance"] = provenance(ctx)
        write_samples(out_dir, ctx)
        write_run(out_dir, results, outcomes)
    return results


def search_pipeline(pipeline: Pipeline, out_dir: Path, trials: int, timeout_s: float | None = None,
                    storage: str | None = None, cache_dir: Path | None = None, on_event: Event | None = None,
                    trust_code: bool = False, on_front: Any = None) -> dict[str, Any]:
    """Search the settings of ``pipeline``'s ``search:`` section until ``trials`` have finished; return the results.

    The study is kept in ``storage`` (an Optuna storage URL; default SQLite in ``out_dir``), so a
    rerun continues it. ``on_front(results)`` is called after every trial (the reports are a layer above).
    """
    from compressor.cache import default_cache_dir
    from compressor.errors import ConfigError
    from compressor.run.context import prepare, quiet
    from compressor.run.executors import make_executor
    from compressor.run.lock import run_folder_lock
    from compressor.run.search import run_search

    if pipeline.spec.search is None:
        raise ConfigError(f"pipeline '{pipeline.name}' has no 'search:' section; add one with 'templates' and "
                          f"'space' (see 'compressor schema' and the README's search section).")
    if trials < 1:
        raise ConfigError(f"--trials {trials} is not a number of trials; give 1 or more.")
    out_dir = Path(out_dir)
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    with run_folder_lock(out_dir):
        ctx = prepare(pipeline, cache_dir, on_event or quiet, trust_code)
        executor = make_executor(pipeline, cache_dir, trust_code)  # trials and measurements: here or on Ray
        try:
            return run_search(ctx, out_dir, trials, timeout_s, storage, on_front or (lambda results: None),
                              on_event or quiet, executor)
        finally:
            executor.close()
