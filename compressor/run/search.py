"""``compressor search``: Optuna trials over pass settings, under the accuracy budget.

Each trial is a variant built from a template of the pipeline's ``search:`` section with the
settings Optuna drew (``search_space``); it runs through the same steps as a hand-written variant,
so its passes go through the content-addressed cache and a prefix shared with earlier trials (or
runs) is computed once. Its objectives come from our own measurements: the metric, the p50 on the
named target and batch, the file size; the budget is a constraint (metric drop - max_drop <= 0).

The study lives in a database: SQLite in the run folder by default (``search.db``), or any
storage URL Optuna takes. Its name comes from the pipeline and the input model, so a rerun of the
same search continues it: a trial cut short by a kill is marked interrupted and drawn again with
the same settings (its finished steps are cache hits), and trials are added until the requested
number have finished. After every trial the best-so-far front is written (results.json; the
caller writes the reports from it).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from compressor.cache import cache_key
from compressor.errors import ConfigError
from compressor.run.context import Event, RunContext, quiet
from compressor.run.search_front import directions, metric_interval, objective_values
from compressor.run.search_space import Param, sample, space_params
from compressor.run.search_results import SearchWriter, shown_url
from compressor.run.step import VariantOutcome, run_variant

log = logging.getLogger(__name__)

STORAGE_FILE = "search.db"


def study_name(ctx: RunContext) -> str:
    """The study of this pipeline and input model: a changed pipeline or model starts a new one."""
    return f"{ctx.spec.name}-{cache_key('search', ctx.spec.model_dump(mode='json'), ctx.reference.sha256)[:12]}"


def storage_url(out_dir: Path, storage: str | None) -> str:
    """``storage`` as given, else SQLite in the run folder."""
    return storage or f"sqlite:///{(Path(out_dir) / STORAGE_FILE).resolve()}"


def open_study(ctx: RunContext, url: str, higher_is_better: bool) -> Any:
    """Create the study, or load it when it exists (a resumed search)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    search = ctx.spec.search
    from sqlalchemy.exc import SQLAlchemyError  # optuna's RDB storage is SQLAlchemy

    try:
        return optuna.create_study(storage=url, study_name=study_name(ctx), load_if_exists=True,
                                   directions=directions(search.objectives, higher_is_better))
    except (ImportError, ValueError, SQLAlchemyError, optuna.exceptions.OptunaError) as exc:
        raise ConfigError(f"--storage '{shown_url(url)}' cannot hold the study ({str(exc).splitlines()[0]}); give a "
                          f"database URL Optuna supports (sqlite:///path/search.db, postgresql://...) with its "
                          f"driver installed.") from None


def make_sampler(ctx: RunContext, number: int) -> Any:
    """The sampler for trial ``number``, seeded from the search seed and the trial number.

    A fresh seed per trial makes a trial's draw depend on the study's history only, not on
    whether the process that draws it ran the trials before it (a resumed search draws as an
    uninterrupted one would from the same history).
    """
    import optuna

    search = ctx.spec.search
    seed = int(cache_key("sampler", search.seed, number)[:8], 16)
    if search.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(population_size=max(2, search.startup_trials), seed=seed)
    return optuna.samplers.TPESampler(n_startup_trials=search.startup_trials, seed=seed)


def recover_interrupted(study: Any) -> list[int]:
    """Trials left running by a killed search: mark them failed (interrupted) and draw their settings again.

    Only for a study no other process runs (SQLite in a locked run folder): with a shared
    ``--storage``, another driver's running trial is live.
    """
    from optuna.trial import TrialState

    redone = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study._storage.set_trial_user_attr(t._trial_id, "interrupted", True)  # noqa: SLF001 (Optuna has no public
        study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)  # way to end another process's trial)
        study.enqueue_trial(t.params, user_attrs={"retry_of": t.number}, skip_if_exists=False)
        redone.append(t.number)
    return redone


def finished_trials(study: Any) -> list[Any]:
    """Trials that count towards --trials: complete or failed, not interrupted."""
    from optuna.trial import TrialState

    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL))
            if not t.user_attrs.get("interrupted")]


def run_trial(ctx: RunContext, study: Any, params: list[Param], measure: Callable[..., dict],
              executor: Any = None) -> dict[str, Any]:
    """Draw, build, run, measure and score one trial; tell Optuna; return its summary."""
    from optuna.trial import TrialState

    study.sampler = make_sampler(ctx, len(study.get_trials(deepcopy=False)))
    trial = study.ask()
    name = f"trial-{trial.number:04d}"
    template, steps, values = sample(trial, ctx.spec.search, params)
    for key, value in {"name": name, "template": template, "steps": steps, "params": values}.items():
        trial.set_user_attr(key, value)  # stored before any work: an interrupted trial is drawn again from them
    summary: dict[str, Any] = {"name": name, "number": trial.number, "template": template, "params": values}
    passes = ctx.pipeline.build_steps(name, steps)
    if executor is None:
        outcome = run_variant(ctx, name, passes)
    else:  # a Ray task on the cluster, or this process
        executor.trial_steps[name] = steps
        outcome = executor.run_variants(ctx, {name: passes})[0]
    summary["cache"] = {"steps_cached": sum(e["cache_hit"] for e in outcome.ledger),
                        "steps_run": sum(not e["cache_hit"] for e in outcome.ledger)}
    row = measure(outcome) if outcome.artifact is not None else None
    if row is not None and "error" not in row:  # a model measured before (this search, or the cache) is reused
        summary["cache"]["measurement_cached"] = bool(row.get("cached"))
        summary.update(trial_figures(ctx, outcome, row))
    else:
        summary["error"] = outcome.error or (row or {}).get("error", "no artifact")
    for key, value in summary.items():
        if key not in ("name", "template", "params"):
            trial.set_user_attr(key, value)
    if "error" in summary:
        study.tell(trial, state=TrialState.FAIL)
        summary["state"] = "FAIL"
    else:
        summary["state"] = "COMPLETE"
        trial.set_constraint("budget", summary["budget_excess"])  # the budget: feasible when <= 0
        higher = ctx.metric.higher_is_better
        study.tell(trial, objective_values(summary, ctx.spec.search.objectives, higher))
    summary["outcome"] = outcome
    return summary


def trial_figures(ctx: RunContext, outcome: VariantOutcome, row: dict[str, Any]) -> dict[str, Any]:
    """A measured variant's objective figures, the budget constraint, and their 95% intervals."""
    value = outcome.ledger[-1]["metric"] if outcome.ledger else ctx.reference_metric
    drop = ctx.metric.drop(ctx.reference_metric, value)
    n = len(ctx.evaluator.split)
    return {"metric": value, "metric_drop": drop, "within_budget": ctx.budget.allows(drop),
            "budget_excess": drop - ctx.budget.max_drop, "metric_interval": list(metric_interval(ctx.metric.name, value, n)),
            "size_bytes": outcome.artifact.size_bytes, "sha256": outcome.artifact.sha256,
            "p50_ms": row["p50_ms"], "p50_low_ms": row.get("p50_low_ms", row["p50_ms"]),
            "p50_high_ms": row.get("p50_high_ms", row["p50_ms"])}


def run_search(ctx: RunContext, out_dir: Path, trials: int, timeout_s: float | None, storage: str | None,
               on_front: Callable[[dict[str, Any]], None], on_event: Event = quiet, executor: Any = None) -> dict[str, Any]:
    """Run trials until ``trials`` have finished in the study (or ``timeout_s`` passed); return the results.

    ``on_front(results)`` is called after every trial with the best-so-far results (the run folder
    writer: results.json, artifacts, reports).
    """
    url = storage_url(out_dir, storage)
    study = open_study(ctx, url, ctx.metric.higher_is_better)
    redone = recover_interrupted(study) if storage is None else []
    if redone:
        on_event("warning", message=f"search resumed: trial(s) {redone} were cut short and are drawn again")
    writer = SearchWriter(ctx, out_dir, executor.measure if executor is not None else None)
    params = space_params(ctx.spec.search)
    start, stopped = time.monotonic(), "trials"
    results = writer.write(study, url, trials, "trials", on_front)
    while len(finished_trials(study)) < trials:
        if timeout_s is not None and time.monotonic() - start >= timeout_s:
            stopped = "timeout"
            break
        summary = run_trial(ctx, study, params, writer.measure, executor)
        writer.remember(summary)
        results = writer.write(study, url, trials, "running", on_front)
        on_event("trial_done", trial=summary["name"], state=summary["state"], summary=summary,
                 finished=len(finished_trials(study)), requested=trials, front=results["search"]["front"])
    return writer.write(study, url, trials, stopped, on_front)
