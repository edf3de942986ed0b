"""The ``compressor`` command line. Bad input prints one line and exits 2, never a traceback."""
from __future__ import annotations

import json
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from compressor.errors import CompressorError

app = typer.Typer(
    help="Compress a trained model (prune, quantize, convert) and measure every result on real runtimes.\n\n"
    "Start with 'compressor demo', then write a pipeline file ('compressor schema' prints its schema) "
    "and run it with 'compressor run PIPELINE.yaml --out DIR'.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
if not console.is_terminal:  # logs and CI: don't squeeze tables into 80 columns
    console = Console(width=160)
err_console = Console(stderr=True, width=None if Console(stderr=True).is_terminal else 400)

TRUST_HELP = ("let a model folder's model.json name a factory to import and call (only for folders you trust; "
              "without it only the code your pipeline names runs)")
DEMO_PIPELINE = Path(__file__).resolve().parents[2] / "samples" / "digits_cnn" / "pipeline.yaml"
VERBOSE_HELP = "also print INFO logs and third-party output (warnings, banners) here; they always go to OUT/run.log"
log = logging.getLogger("compressor.cli")  # not __name__: run as "python -m compressor.cli" that is __main__


class ConsoleEvents:
    """Renders run events: one line per pass, a status line while work runs."""

    def __init__(self) -> None:
        self.status = console.status("starting")
        self.status.start()

    def __call__(self, kind: str, **info: Any) -> None:
        if kind in ("stage", "variant_start", "pass_done", "variant_done", "warning"):
            log.info("%s", _event_line(kind, info))  # the run's log file keeps the pass log
        if kind == "stage":
            self.status.update(info["message"])
        elif kind == "variant_start":
            console.print(f"[bold]{info['variant']}[/bold] ({info['steps']} passes)")
        elif kind == "pass_start":
            self.status.update(f"{info['variant']}: running {info['name']}")
        elif kind == "pass_progress":
            self.status.update(f"{info['variant']}: {info['name']}: {info['message']}")
        elif kind == "pass_done":
            e = info["entry"]
            parity = f"  parity max err {e['parity']['max_abs_error']:.2e}" if e.get("parity") else ""
            flag = "" if e["within_budget"] else "  [red]over budget[/red]"
            took = "cache hit" if e["cache_hit"] else f"{e['seconds']:.1f} s"
            console.print(f"  {info['index'] + 1}. {info['name']:<24} {e['format_out']:<7} metric {e['metric']:.4f} "
                          f"(drop {e['metric_drop']:+.4f}){parity}  {took}{flag}")
        elif kind == "variant_done" and info.get("error"):
            console.print(f"  [red]failed[/red]: {info['error']}")
        elif kind == "warning":
            console.print(f"[yellow]warning[/yellow] {info['message']}", highlight=False)
        elif kind == "paired":
            self.status.update(f"paired rounds on {info['target']} batch {info['batch']}: measurement {info['index']}, "
                               f"{info['artifact']}")
        elif kind == "trial_done":
            console.print(_trial_line(info), highlight=False)
        elif kind == "bench":
            self.status.update(f"measuring {info['index']}/{info['total']}: {info['artifact']} on {info['target']} batch {info['batch']}")

    def stop(self) -> None:
        self.status.stop()


def _event_line(kind: str, info: dict[str, Any]) -> str:
    entry = info.get("entry")
    if kind == "pass_done" and entry:
        took = "cache hit" if entry["cache_hit"] else f"{entry['seconds']:.1f} s"
        return (f"{info['variant']}: {info['index'] + 1}. {info['name']} -> {entry['format_out']}, metric "
                f"{entry['metric']:.4f} (drop {entry['metric_drop']:+.4f}), {took}")
    return f"{kind}: " + ", ".join(f"{k}={v}" for k, v in info.items())


def _trial_line(info: dict[str, Any]) -> str:
    s = info["summary"]
    head = f"[bold]{info['trial']}[/bold] ({info['finished']}/{info['requested']})"
    if s["state"] != "COMPLETE":
        return f"{head} [red]failed[/red]: {s.get('error', '')}"
    flag = "" if s["within_budget"] else "  [red]over budget[/red]"
    cache = s["cache"]
    return (f"{head} metric {s['metric']:.4f} (drop {s['metric_drop']:+.4f}), p50 {s['p50_ms']:.4g} ms, "
            f"{s['size_bytes'] / 1024:.1f} KiB; steps run {cache['steps_run']}, cached {cache['steps_cached']}; "
            f"front: {', '.join(info['front']) or '(none within budget)'}{flag}")


def _fail(exc: CompressorError) -> None:
    from rich.markup import escape

    # the message is plain text: "[torch:cpu]" or "[0, 1]" in it must not be read as console markup
    err_console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True, markup=True)
    sys.exit(2)


def _writable_folder(path: Path, what: str) -> Path:
    """``path`` resolved once, here (relative paths are relative to where the command runs); refused
    with one line when it is a file or cannot be written."""
    path = path.expanduser().resolve()
    if path.exists() and not path.is_dir():
        raise CompressorError(f"{what} '{path}' is a file, not a folder; give a folder path (it is created if missing).")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-check-"):
            pass
    except OSError as exc:
        raise CompressorError(f"{what} '{path}' cannot be written ({exc.strerror or exc}); choose a folder you can write to.") from None
    return path


def _run(pipeline_path: Path, out: Optional[Path], variant: list[str], strict: bool, cache: Optional[Path],
         no_bench: bool, trust_code: bool = False, remeasure: bool = False, verbose: bool = False) -> None:
    from compressor import load_pipeline, run_pipeline
    from compressor.run.log_file import run_log
    from compressor.run.results import exit_code, failed_benchmarks

    pipeline = load_pipeline(pipeline_path.expanduser().resolve())
    if variant:
        pipeline.select(variant)
    out = _writable_folder(out or Path("runs") / pipeline.name, "--out")
    cache = _writable_folder(cache, "--cache") if cache else None
    events = ConsoleEvents()
    try:
        with run_log(out, verbose):
            results = run_pipeline(pipeline, out, cache_dir=cache, on_event=events, benchmark=not no_bench,
                                   trust_code=trust_code, remeasure=remeasure)
    finally:
        events.stop()
    _summary(results)
    console.print(f"\nreport: {out / 'report.md'}  (also report.html, pareto.png, results.json)")
    for record in results.get("packages", []):
        if record.get("path"):
            console.print(f"package for {record['target']}: {out / record['path']} ({record['variant']}: "
                          f"{record['selected_by']}; verified)", highlight=False)
        else:
            err_console.print(f"package for {record['target']}: {record.get('error') or record.get('skipped')}",
                              highlight=False, soft_wrap=True, markup=False)
    code = exit_code(results, strict)
    for line in failed_benchmarks(results):
        err_console.print(f"error: benchmark of {line}", highlight=False, soft_wrap=True, markup=False)
    for v in results["variants"]:
        if v.get("bad_input"):
            err_console.print(f"error: variant '{v['name']}' {v['error']}", highlight=False, soft_wrap=True, markup=False)
    if code == 3:
        err_console.print("no variant is within the accuracy budget (--strict)")
    raise typer.Exit(code)


def _summary(results: dict[str, Any]) -> None:
    table = Table(title=f"{results['pipeline']}: {results['metric']['name']} (reference {results['reference']['metric']:.4f})")
    for col in ("variant", "format", "size KiB", "metric", "drop", "in budget", "best p50 ms", "warnings"):
        table.add_column(col)
    for v in results["variants"]:
        a = v.get("artifact") or {}
        p50 = [b["p50_ms"] for b in v.get("benchmarks", []) if b.get("batch_size") == 1 and "p50_ms" in b]
        bench_failed = any(b.get("error") for b in v.get("benchmarks", []))
        table.add_row(v["name"], a.get("format", "—"), f"{a['size_bytes'] / 1024:.1f}" if a else "—",
                      "—" if v["metric"] is None else f"{v['metric']:.4f}",
                      "—" if v["metric_drop"] is None else f"{v['metric_drop']:+.4f}",
                      "yes" if v["within_budget"] else "[red]no[/red]",
                      "[red]failed[/red]" if bench_failed else (f"{min(p50):.3f}" if p50 else "—"),
                      str(len(v.get("warnings", []))) if v["status"] == "ok" else "[red]failed[/red]")
    console.print(table)
    for v in results["variants"]:
        for w in v.get("warnings", []):
            console.print(f"[yellow]warning[/yellow] {v['name']}: {w}")


@app.command()
def run(
    pipeline: Path = typer.Argument(..., help="pipeline YAML file"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="run folder (default: runs/<pipeline name>)"),
    variant: list[str] = typer.Option([], "--variant", "-v", help="run only this variant (repeatable)"),
    strict: bool = typer.Option(False, help="exit non-zero when no variant is within the accuracy budget"),
    cache: Optional[Path] = typer.Option(
        None, help="cache folder (default: $COMPRESSOR_CACHE, else ~/.cache/compressor, shared by every run)"),
    no_bench: bool = typer.Option(False, "--no-bench", help="skip latency measurements"),
    trust_code: bool = typer.Option(False, "--trust-code", help=TRUST_HELP),
    remeasure: bool = typer.Option(False, "--remeasure", help="take fresh measurements instead of cached ones"),
    verbose: bool = typer.Option(False, "--verbose", "-V", help=VERBOSE_HELP),
) -> None:
    """Run a pipeline: every variant's passes, checks after each pass, measurements, reports."""
    _run(pipeline, out, variant, strict, cache, no_bench, trust_code, remeasure, verbose)


@app.command()
def search(
    pipeline: Path = typer.Argument(..., help="pipeline YAML file with a 'search:' section"),
    trials: int = typer.Option(..., "--trials", "-n", help="finish this many trials in the study (a rerun continues it)"),
    timeout: Optional[float] = typer.Option(None, "--timeout", help="start no trial after this many seconds"),
    storage: Optional[str] = typer.Option(
        None, "--storage", help="Optuna storage URL, shared by several drivers (default: sqlite in OUT/search.db)"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="run folder (default: runs/<pipeline name>-search)"),
    cache: Optional[Path] = typer.Option(None, help="cache folder (default: the shared cache, as for 'run')"),
    trust_code: bool = typer.Option(False, "--trust-code", help=TRUST_HELP),
    verbose: bool = typer.Option(False, "--verbose", "-V", help=VERBOSE_HELP),
) -> None:
    """Search pass settings under the budget (Optuna); the best-so-far front is written after every trial."""
    from compressor import load_pipeline, search_pipeline
    from compressor.run.log_file import run_log

    spec = load_pipeline(pipeline.expanduser().resolve())
    out = _writable_folder(out or Path("runs") / f"{spec.name}-search", "--out")
    cache = _writable_folder(cache, "--cache") if cache else None
    events = ConsoleEvents()
    try:
        with run_log(out, verbose):
            results = search_pipeline(spec, out, trials, timeout_s=timeout, storage=storage, cache_dir=cache,
                                      on_event=events, trust_code=trust_code)
    finally:
        events.stop()
    s = results["search"]
    console.print(f"\n{s['trials_finished']}/{s['trials_requested']} trials finished (stopped by {s['stopped']}); "
                  f"front: {', '.join(s['front']) or 'none within budget'}")
    for d in s["dominance"]:
        beaten = ", ".join(b["trial"] for b in d["dominated_by"]) or "no trial"
        console.print(f"  {d['variant']}: beaten by {beaten}", highlight=False)
    console.print(f"report: {out / 'report.md'}  (also report.html, pareto.png, results.json)")


@app.command()
def demo(out: Path = typer.Option(Path("runs/demo"), "--out", "-o", help="run folder"),
         cache: Optional[Path] = typer.Option(None, help="cache folder (default: the shared cache)"),
         remeasure: bool = typer.Option(False, "--remeasure", help="take fresh measurements instead of cached ones"),
         verbose: bool = typer.Option(False, "--verbose", "-V", help=VERBOSE_HELP)) -> None:
    """Run the built-in digits CNN sample end to end (trains its model first if needed)."""
    from samples.digits_cnn.train import ensure_weights

    ensure_weights()
    _run(DEMO_PIPELINE, out, [], False, cache, False, remeasure=remeasure, verbose=verbose)


@app.command()
def bench(
    model: Path = typer.Argument(..., help="model file (.onnx, ...) or torch model folder"),
    runtime: Optional[str] = typer.Option(
        None, "--runtime", "-r", help="target as runtime:device (default: the format's own runtime on cpu)"),
    batch: str = typer.Option("1", help="comma-separated batch sizes of at least 1, e.g. 1,32"),
    threads: int = typer.Option(1, min=1),
    min_runs: int = typer.Option(100, min=1),
    min_seconds: float = typer.Option(1.0, min=0),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
    trust_code: bool = typer.Option(False, "--trust-code", help=TRUST_HELP),
) -> None:
    """Measure one model on one target: latency percentiles, throughput, cold start, peak RSS."""
    from compressor.code import TrustPolicy, trusting

    with trusting(TrustPolicy(trust_all=trust_code)):
        _bench(model, runtime, batch, threads, min_runs, min_seconds, as_json)


def _bench(model: Path, runtime: Optional[str], batch: str, threads: int, min_runs: int, min_seconds: float,
           as_json: bool) -> None:
    from backends import RUNTIMES, get_runtime, parse_target
    from compressor.artifact import Artifact, content_sha256
    from compressor.formats import detect_format
    from compressor.frameworks import format_info, function_for
    from compressor.measure.harness import measure, random_samples
    from compressor.measure.timing import TimingSettings

    fmt = detect_format(model)
    target = parse_target(runtime or f"{format_info(fmt).runtime}:cpu")
    rt = get_runtime(target.runtime)
    if not rt.can_run(fmt):
        able = [name for name in RUNTIMES if get_runtime(name).can_run(fmt)]
        raise CompressorError(f"runtime '{target.runtime}' cannot run '{fmt.value}' models (it runs {', '.join(rt.formats)}); "
                              f"use --runtime {able[0] if able else '...'}:cpu or leave --runtime out.")
    try:
        sizes = [int(b) for b in batch.split(",")]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise CompressorError(f"--batch '{batch}' is not a comma-separated list of batch sizes of at least 1; e.g. --batch 1,32.")
    importer = function_for(fmt, "importer", "bench",
                            "measure a PyTorch model through a pipeline (targets: [torch:cpu])" if fmt.value == "torch" else "")
    with tempfile.TemporaryDirectory() as tmp:
        signature = importer(model, Path(tmp))[1]
    shaped = [s for s in signature.inputs if s.shape]
    if shaped and all(isinstance(d, int) for s in shaped for d in s.shape) and set(sizes) != {shaped[0].shape[0]}:
        fixed = ", ".join(f"{s.name} {list(s.shape)}" for s in shaped)
        raise CompressorError(f"'{model}' has fixed input shapes ({fixed}), so it runs at one batch size only; "
                              f"bench it with --batch {shaped[0].shape[0]}.")
    art = Artifact(fmt, model.resolve(), signature, content_sha256(model))
    settings = TimingSettings(min_runs=min_runs, min_seconds=min_seconds)
    rows = [measure(art, target.runtime, target.device, b, threads, settings, random_samples(art)) for b in sizes]
    if as_json:
        console.print_json(json.dumps(rows))
        return
    table = Table(title=f"{model} on {target} ({threads} thread{'s' if threads > 1 else ''})")
    for col in ("batch", "p50 ms", "p90 ms", "p99 ms", "cv", "per s", "cold ms", "RSS MB"):
        table.add_column(col)
    for r in rows:
        table.add_row(str(r["batch_size"]), f"{r['p50_ms']:.3f}", f"{r['p90_ms']:.3f}", f"{r['p99_ms']:.3f}",
                      f"{r['cv']:.3f}", f"{r['throughput_per_s']:.1f}", f"{r['cold_start_ms']:.1f}", f"{r['peak_rss_mb']:.0f}")
    console.print(table)


@app.command()
def inspect(
    model: Path = typer.Argument(..., help="model file or torch model folder"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
    trust_code: bool = typer.Option(False, "--trust-code", help=TRUST_HELP),
) -> None:
    """Format, signature, parameters, sparsity, op histogram and int8 share of a model."""
    from compressor.code import TrustPolicy, trusting
    from compressor.frameworks.inspecting import inspect_model

    with trusting(TrustPolicy(trust_all=trust_code)):
        info = inspect_model(model)
    if as_json:
        console.print_json(json.dumps(info))
        return
    for key, value in info.items():
        if key == "nodes":
            continue
        if isinstance(value, dict):
            value = ", ".join(f"{k}: {v}" for k, v in value.items())
        elif isinstance(value, list):
            value = ", ".join(json.dumps(v) if isinstance(v, dict) else str(v) for v in value) or "(none)"
        console.print(f"[bold]{key}[/bold]: {value}", highlight=False)


@app.command()
def passes() -> None:
    """List the registered passes (imports no framework)."""
    from compressor.passes.registry import DESCRIPTIONS, pass_names

    table = Table(title="passes")
    table.add_column("name")
    table.add_column("what it does")
    for name in pass_names():
        table.add_row(name, DESCRIPTIONS.get(name, ""))
    console.print(table)


@app.command()
def runtimes() -> None:
    """List the runtimes, whether they are installed, and their usable devices."""
    from backends import RUNTIMES, get_runtime

    table = Table(title="runtimes")
    for col in ("name", "formats", "installed", "version", "devices here"):
        table.add_column(col)
    for name in RUNTIMES:
        rt = get_runtime(name)
        ok = rt.is_available()
        table.add_row(name, ", ".join(rt.formats), "yes" if ok else f"no — {rt.install_hint}",
                      rt.version() or "—", ", ".join(rt.available_devices()) if ok else "—")
    console.print(table)


@app.command()
def schema(package: bool = typer.Option(False, "--package", help="print the package manifest's schema instead")) -> None:
    """Print the pipeline file's JSON schema (or, with --package, a package's manifest.json schema)."""
    if package:
        from compressor.package.manifest import json_schema as manifest_schema

        print(json.dumps(manifest_schema(), indent=2))
        return
    from compressor.run.pipeline import json_schema

    print(json.dumps(json_schema(), indent=2))


@app.command()
def report(run_dir: Path = typer.Argument(..., help="a run folder with results.json")) -> None:
    """Rebuild report.md, report.html and pareto.png from results.json, without re-running."""
    from compressor.report import rebuild

    console.print(f"report: {rebuild(run_dir)}")


# the deployment and CI-gate commands (package, verify, compare) live in cli/ship.py
from compressor.cli import ship  # noqa: E402,F401  (registers them on app)


def main() -> None:
    """Entry point: run the app; a CompressorError becomes one line on stderr and exit status 2."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        app()
    except CompressorError as exc:
        _fail(exc)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
