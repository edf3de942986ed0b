"""A run: prepare a frozen context, apply every variant's steps, measure, write the results.

``run_pipeline`` is the whole job; its stages are separate modules that take the context:
``context`` (prepare), ``step`` (a pass through the cache, verified), ``measurements`` (the
harness on every target), ``speed`` (speed checks), ``results`` (results.json and the folder).
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
    from compressor.run.lock import run_folder_lock
    from compressor.run.measurements import collect
    from compressor.run.results import build_results, write_run
    from compressor.run.step import refuse_early, run_variant

    out_dir = Path(out_dir)
    with run_folder_lock(out_dir):
        ctx = prepare(pipeline, Path(cache_dir) if cache_dir else default_cache_dir(), on_event or quiet, trust_code)
        refuse_early(ctx, pipeline)
        outcomes = [run_variant(ctx, name, passes) for name, passes in pipeline.variants.items()]
        benches, skipped = collect(ctx, outcomes, remeasure) if benchmark else ({}, [])
        generation = {}
        if pipeline.spec.generation is not None:
            from compressor.run.generation import collect_generation

            generation = collect_generation(ctx, outcomes, remeasure, timed=benchmark)
        results = build_results(ctx, outcomes, benches, skipped, fingerprint(), generation)
        write_run(out_dir, results, outcomes)
    return results
