"""Where a run's jobs run: this process (``local``, the default, no Ray needed) or a Ray cluster.

An executor does two things for the runner: run variants (``run_variants``) and take measurements
(``measure``). The Ray executor sends each variant to the cluster as a task (artifacts stay in the
shared cache folder and travel as records; see ``ray_tasks``) and each measurement as a task
placed where the hardware is: a target written ``runtime:device@node:RESOURCE`` is measured only
on a node that advertises the Ray custom resource RESOURCE, one measurement at a time there. Every
figure measured on the cluster records the node that took it and its environment fingerprint.
Measurements are still cached by the measuring node's machine fingerprint, asked of that node
first, so a figure is reused only for the same kind of machine.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compressor.artifact import Artifact
from compressor.errors import CompressorError, ConfigError, MeasurementError
from compressor.run.measurements import (
    BENCH_FIELDS,
    MeasureJob,
    bench_samples,
    error_entry,
    measure_locally,
    measurement_key,
    timing_settings,
)
from compressor.run.step import VariantOutcome, run_variant

if TYPE_CHECKING:
    from compressor.run.context import RunContext
    from compressor.run.pipeline import Pipeline

log = logging.getLogger(__name__)


class LocalExecutor:
    """Variants one after the other in this process; measurements through the harness on this machine."""

    kind = "local"

    def __init__(self) -> None:
        self.trial_steps: dict[str, list[Any]] = {}  # a search's trials: their steps (the Ray executor needs them)

    def run_variants(self, ctx: RunContext, variants: dict[str, list[Any]]) -> list[VariantOutcome]:
        return [run_variant(ctx, name, passes) for name, passes in variants.items()]

    def measure(self, ctx: RunContext, jobs: list[MeasureJob], remeasure: bool = False) -> list[dict[str, Any]]:
        return measure_locally(ctx, jobs, remeasure)

    def close(self) -> None:
        """Nothing to release."""


def make_executor(pipeline: Pipeline, cache_dir: Path, trust_code: bool) -> LocalExecutor | RayExecutor:
    """The executor the pipeline names (``executor: local`` or ``{kind: ray, address: ...}``)."""
    spec = pipeline.spec.executor_spec
    if spec.kind == "ray":
        return RayExecutor(pipeline, cache_dir, trust_code, spec.address)
    return LocalExecutor()


class RayExecutor:
    """Variants and measurements as Ray tasks; a cluster started here is shut down by ``close``."""

    kind = "ray"

    def __init__(self, pipeline: Pipeline, cache_dir: Path, trust_code: bool, address: str | None) -> None:
        try:
            import ray
        except ImportError:
            raise ConfigError("executor 'ray' needs Ray, which is not installed; pip install 'compressor[search]' "
                              "or use 'executor: local'.") from None
        from compressor.measure.harness import user_import_paths

        self._owns = not ray.is_initialized()
        if self._owns:
            try:
                ray.init(address=None if address in (None, "local") else address, logging_level=logging.ERROR,
                         log_to_driver=False, include_dashboard=False)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise ConfigError(f"executor address '{address}' does not reach a Ray cluster ({exc}); start one "
                                  f"('ray start --head') or give 'auto' / 'ray://host:port'.") from None
        self.job = {"spec": pipeline.spec.model_dump(mode="json"), "base_dir": str(pipeline.base_dir),
                    "cache_dir": str(Path(cache_dir).resolve()), "trust_code": trust_code,
                    "paths": user_import_paths()}
        self._nodes: dict[str | None, dict[str, Any]] = {}  # resource -> the node measuring it
        self.trial_steps: dict[str, list[Any]] = {}  # steps of search trials (not in the file), set by the search

    def run_variants(self, ctx: RunContext, variants: dict[str, list[Any]]) -> list[VariantOutcome]:
        """Each variant a task on the cluster; outcomes in the order given, events as each one returns."""
        import ray

        from compressor.run.ray_tasks import run_variant_task

        steps = self._steps(ctx, variants)
        task = ray.remote(num_cpus=1, max_retries=0)(run_variant_task)
        futures = {task.remote(self.job, name, steps[name]): name for name in variants}
        outcomes: dict[str, VariantOutcome] = {}
        pending = list(futures)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            name = futures[done[0]]
            outcomes[name] = self._outcome(ctx, name, variants[name], ray.get(done[0]))
        return [outcomes[name] for name in variants]

    def _steps(self, ctx: RunContext, variants: dict[str, list[Any]]) -> dict[str, list[Any]]:
        written = dict(ctx.spec.variants)
        if ctx.spec.search is not None:
            written.update(ctx.spec.search.templates)
        return {name: self.trial_steps.get(name) or written[name] for name in variants}

    @staticmethod
    def _outcome(ctx: RunContext, name: str, passes: list[Any], result: dict[str, Any]) -> VariantOutcome:
        chain = [Artifact.from_dict(a) for a in result["chain"]]
        outcome = VariantOutcome(name, list(passes), artifact=None if result["error"] else chain[-1],
                                 ledger=result["ledger"], chain=chain, error=result["error"],
                                 traceback=result["traceback"], refused=result["refused"])
        ctx.on_event("variant_start", variant=name, steps=len(passes))
        for index, entry in enumerate(outcome.ledger):
            ctx.on_event("pass_done", variant=name, index=index, name=entry["pass"], entry=entry)
        ctx.on_event("variant_done", variant=name, error=outcome.error)
        return outcome

    def _node_for(self, resource: str | None) -> dict[str, Any]:
        """The node measuring targets bound to ``resource`` (None: the first node that answers), and its facts."""
        import ray

        from compressor.run.ray_tasks import probe_task

        if resource not in self._nodes:
            if resource and not any(resource in n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")):
                raise MeasurementError(f"no node of the Ray cluster advertises resource '{resource}'; start one with "
                                       f"'ray start --resources={{\"{resource}\": 1}}' or drop '@node:{resource}'.")
            options = {"resources": {resource: 1}} if resource else {}
            node = ray.get(ray.remote(num_cpus=0)(probe_task).options(**options).remote())
            alive = {n["NodeID"]: n for n in ray.nodes() if n.get("Alive")}
            node["cpus"] = float(alive.get(node["node_id"], {}).get("Resources", {}).get("CPU", 1))
            self._nodes[resource] = node
        return self._nodes[resource]

    def measure(self, ctx: RunContext, jobs: list[MeasureJob], remeasure: bool = False) -> list[dict[str, Any]]:
        """Each job's row: from the cache (same settings, same kind of node) or measured by a task on its node."""
        settings, samples = timing_settings(ctx), bench_samples(ctx)
        rows: list[dict[str, Any] | None] = [None] * len(jobs)
        keys: dict[int, str] = {}
        for i, job in enumerate(jobs):
            try:
                node = self._node_for(job.target.resource)
            except CompressorError as exc:
                rows[i] = error_entry(ctx, job, exc)
                continue
            keys[i] = measurement_key(ctx, job.artifact, job.target_text, job.batch, settings, node["machine"])
            hit = None if remeasure else ctx.cache.get_json("bench", keys[i])
            if hit is not None:
                rows[i] = {**hit, "cached": True}
        fresh = [i for i in keys if rows[i] is None]
        for i, result in zip(fresh, self._dispatch(ctx, [jobs[i] for i in fresh], settings, samples)):
            if isinstance(result, Exception):
                rows[i] = error_entry(ctx, jobs[i], result)
                continue
            rows[i] = {**ctx.cache.put_json("bench", keys[i], result), "cached": False}
        for i, row in enumerate(rows):
            if "error" not in row:
                try:
                    row["metric"], _ = ctx.metric_of(jobs[i].artifact, jobs[i].target_text)
                except CompressorError as exc:
                    rows[i] = error_entry(ctx, jobs[i], exc)
        return rows

    def _dispatch(self, ctx: RunContext, jobs: list[MeasureJob], settings: Any, samples: Any) -> list[Any]:
        """Measurement tasks, each pinned to its node and holding all its CPUs (one measurement at a time there)."""
        from dataclasses import asdict

        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        from compressor.run.ray_tasks import artifact_files, measure_task

        threads, shipped, futures = ctx.spec.benchmark.threads, {}, []
        samples_ref = ray.put(samples)
        for n, job in enumerate(jobs, 1):
            ctx.on_event("bench", index=n, total=len(jobs), target=job.target_text, batch=job.batch, artifact=job.artifact.id)
            node = self._node_for(job.target.resource)
            if job.artifact.sha256 not in shipped:  # by value, once per model: boards rarely mount the cache
                shipped[job.artifact.sha256] = ray.put(artifact_files(Path(job.artifact.path)))
            options = {"num_cpus": node["cpus"], "max_retries": 0,
                       "scheduling_strategy": NodeAffinitySchedulingStrategy(node["node_id"], soft=False)}
            if job.target.resource:
                options["resources"] = {job.target.resource: 1}
            futures.append(ray.remote(measure_task).options(**options).remote(
                job.artifact.to_dict(), shipped[job.artifact.sha256], job.target_text, job.batch, threads,
                asdict(settings), samples_ref, ctx.trust.to_dict(), self.job["paths"]))
        results = []
        for future in futures:
            try:
                out = ray.get(future)
            except ray.exceptions.RayTaskError as exc:
                cause = exc.cause if isinstance(getattr(exc, "cause", None), Exception) else exc
                results.append(cause if isinstance(cause, CompressorError) else MeasurementError(str(cause).splitlines()[0]))
                continue
            raw = out["raw"]
            entry = {k: raw[k] for k in ("runtime", "device", "batch_size", "threads")}
            entry.update({k: round(float(raw[k]), 4) for k in BENCH_FIELDS})
            entry["measured_on"] = out["node"]
            results.append(entry)
        return results

    def close(self) -> None:
        """Shut down the Ray session this executor started (a cluster it joined keeps running)."""
        if self._owns:
            import ray

            ray.shutdown()
