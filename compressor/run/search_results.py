"""A search's run folder: the hand-written variants it is compared with, each trial's measurement,
and results.json rewritten with the best-so-far front after every trial.

results.json keeps schema 1: ``variants`` holds the compared hand-written variants and the front's
trials (each with its ledger and its benchmark on the latency target), and ``search`` holds the
study, every trial, the front, the cache's share of the work and which trials beat which variant.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from compressor.errors import ConfigError
from compressor.run.context import RunContext, quiet
from compressor.run.measurements import MeasureJob, measure_locally, usable_targets
from compressor.run.results import build_results, write_run
from compressor.run.search_front import directions, dominance, metric_interval, pareto_front
from compressor.run.step import VariantOutcome, run_variant


def latency_target(ctx: RunContext) -> tuple[Any, Any]:
    """The latency objective's (target, runtime), refused when this machine cannot run it."""
    text = ctx.spec.search.latency.target
    usable, skipped = usable_targets([text])
    if not usable:
        raise ConfigError(f"search.latency.target '{text}' cannot run here ({skipped[0]['reason']}); "
                          f"name a target 'compressor runtimes' lists as installed.")
    return usable[0]


def final_format(ctx: RunContext, passes: list[Any]) -> Any:
    """The format a list of passes ends in, from the input model's."""
    fmt = ctx.pipeline.input_format()
    for p in passes:
        fmt = p.produces(fmt)
    return fmt


class SearchWriter:
    """Measures trials and the compared variants, and writes the run folder after every trial."""

    def __init__(self, ctx: RunContext, out_dir: Path, measure_jobs: Any = None) -> None:
        from compressor.measure.environment import fingerprint

        self.ctx, self.out_dir, self.measure_jobs = ctx, Path(out_dir), measure_jobs or measure_locally
        self.target, self.runtime = latency_target(ctx)
        self.batch = ctx.spec.search.latency.batch_size
        for name, steps in ctx.spec.search.templates.items():
            fmt = final_format(ctx, ctx.pipeline.build_steps(f"search template '{name}'", steps))
            if not self.runtime.can_run(fmt):
                raise ConfigError(f"search template '{name}' ends in a {fmt.value} model, which "
                                  f"search.latency.target '{self.target}' cannot run; end it in a format "
                                  f"{self.target.runtime} runs ({', '.join(self.runtime.formats)}) or change the target.")
        self.outcomes: dict[str, VariantOutcome] = {}  # trials run or rebuilt in this process
        self.rows: dict[str, dict[str, Any]] = {}  # artifact sha256 -> its row on the latency target
        self.env = fingerprint()
        self.compared = [self._run_compared(name) for name in self._compared_names()]

    def _compared_names(self) -> list[str]:
        names = self.ctx.spec.search.compare
        if names is not None:
            return names
        return [n for n, passes in self.ctx.pipeline.variants.items()
                if self.runtime.can_run(final_format(self.ctx, passes))]

    def _run_compared(self, name: str) -> VariantOutcome:
        outcome = run_variant(self.ctx, name, self.ctx.pipeline.variants[name])
        if outcome.artifact is not None:
            self.measure(outcome)
        return outcome

    def measure(self, outcome: VariantOutcome) -> dict[str, Any]:
        """The row of ``outcome``'s model on the latency target and batch (cached when measured before)."""
        sha = outcome.artifact.sha256
        if sha in self.rows:  # the same model again (a trial drawing settings drawn before): reused
            return {**self.rows[sha], "cached": True}
        job = MeasureJob(outcome.artifact, self.target, self.runtime, self.batch)
        self.rows[sha] = self.measure_jobs(self.ctx, [job])[0]
        return self.rows[sha]

    def remember(self, summary: dict[str, Any]) -> None:
        """Keep a trial's outcome, so writing the front does not rebuild it."""
        self.outcomes[summary["name"]] = summary.pop("outcome")

    def _outcome(self, study: Any, name: str, number: int) -> VariantOutcome:
        if name not in self.outcomes:  # a trial of an earlier session: every step is a cache hit
            steps = study.get_trials(deepcopy=False)[number].user_attrs["steps"]
            quiet = quiet_context(self.ctx)
            self.outcomes[name] = run_variant(quiet, name, self.ctx.pipeline.build_steps(name, steps))
        return self.outcomes[name]

    def _compared_rows(self) -> list[dict[str, Any]]:
        n, rows = len(self.ctx.evaluator.split), []
        for o in self.compared:
            row = self.rows.get(o.artifact.sha256) if o.artifact is not None else None
            if row is None or "error" in row:
                continue
            value = o.ledger[-1]["metric"] if o.ledger else self.ctx.reference_metric
            rows.append({"name": o.name, "metric": value, "metric_interval": list(metric_interval(self.ctx.metric.name, value, n)),
                         "p50_ms": row["p50_ms"], "p50_low_ms": row.get("p50_low_ms", row["p50_ms"]),
                         "p50_high_ms": row.get("p50_high_ms", row["p50_ms"]), "size_bytes": o.artifact.size_bytes})
        return rows

    def write(self, study: Any, url: str, requested: int, stopped: str, on_front: Any) -> dict[str, Any]:
        """results.json (and, through ``on_front``, the reports) with the compared variants and the front."""
        section = search_section(self.ctx, study, url, requested, self._compared_rows(), stopped)
        numbers = {r["name"]: r["number"] for r in section["trials"]}
        front = [self._outcome(study, name, numbers[name]) for name in section["front"]]
        for o in front:
            self.measure(o)
        outcomes = self.compared + front
        benches = {sha: [row] for sha, row in self.rows.items()}
        results = build_results(self.ctx, outcomes, benches, [], self.env)
        results["search"] = section
        self._drop_old_front(set(section["front"]))
        write_run(self.out_dir, results, outcomes)
        on_front(results)
        return results

    def _drop_old_front(self, keep: set[str]) -> None:
        """Remove the models of trials that left the front from artifacts/."""
        folder = self.out_dir / "artifacts"
        if not folder.is_dir():
            return
        import shutil

        for path in folder.iterdir():
            stem = path.name.split(".")[0]
            if stem.startswith("trial-") and stem not in keep:
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink(missing_ok=True)


def shown_url(url: str) -> str:
    """A storage URL fit for results.json: the password, if any, replaced by ***."""
    head, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if not at or ":" not in creds:
        return url
    return f"{head}{sep}{creds.split(':', 1)[0]}:***@{host}"


def summaries(study: Any) -> list[dict[str, Any]]:
    """Every trial's stored summary, in trial order (from the database: trials of earlier sessions too)."""
    out = []
    for t in study.get_trials(deepcopy=False):
        s = {k: v for k, v in t.user_attrs.items() if k != "steps"}
        s.setdefault("name", f"trial-{t.number:04d}")
        s.update(number=t.number, state=t.state.name)
        out.append(s)
    return out


def search_section(ctx: RunContext, study: Any, url: str, requested: int, compared: list[dict[str, Any]],
                   stopped: str) -> dict[str, Any]:
    """results.json's ``search``: the study, every trial, the front, the cache's share, who beat whom."""
    search, higher = ctx.spec.search, ctx.metric.higher_is_better
    rows = summaries(study)
    done = [r for r in rows if r["state"] == "COMPLETE"]
    first = {}  # trials that made the same model (the same settings drawn again) are one point: the first
    for r in done:
        first.setdefault(r.get("sha256"), r)
    front = sorted(pareto_front(list(first.values()), search.objectives, higher), key=lambda r: r["p50_ms"])
    cache = {"steps_run": 0, "steps_cached": 0, "measurements_taken": 0, "measurements_cached": 0}
    for r in rows:
        c = r.get("cache", {})
        cache["steps_run"] += c.get("steps_run", 0)
        cache["steps_cached"] += c.get("steps_cached", 0)
        if "measurement_cached" in c:
            cache["measurements_cached" if c["measurement_cached"] else "measurements_taken"] += 1
    return {
        "study": study.study_name, "storage": shown_url(url), "sampler": search.sampler,
        "objectives": search.objectives, "directions": directions(search.objectives, higher),
        "latency": search.latency.model_dump(), "trials_requested": requested,
        "trials_finished": sum(r["state"] in ("COMPLETE", "FAIL") and not r.get("interrupted") for r in rows),
        "trials_failed": sum(r["state"] == "FAIL" and not r.get("interrupted") for r in rows),
        "trials_interrupted": sum(bool(r.get("interrupted")) for r in rows), "stopped": stopped,
        "front": [r["name"] for r in front], "trials": rows, "cache": cache, "compared": compared,
        "dominance": dominance(done, compared, higher),
    }


def quiet_context(ctx: RunContext) -> RunContext:
    """``ctx`` with its events sent to the log only (rebuilding an earlier trial from the cache)."""
    return replace(ctx, on_event=quiet)
