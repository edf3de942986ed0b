"""Commands that ship and gate a finished run: package, verify (deployment packages) and compare (a CI gate)."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from compressor.cli import app, console, err_console
from compressor.errors import CompressorError


@app.command("package")
def package_cmd(
    run_dir: Path = typer.Argument(..., help="a run folder (results.json, artifacts/)"),
    variant: str = typer.Option(..., "--variant", "-v", help="the variant to package"),
    out: Path = typer.Option(..., "--out", "-o", help="the package folder to write (replaced if present)"),
    target: Optional[str] = typer.Option(None, "--target", "-t", help="runtime:device (default: the format's runtime on cpu)"),
    version: str = typer.Option("1.0.0", help="the package's version"),
    golden_samples: int = typer.Option(4, min=1, max=16, help="real evaluation samples in the golden sample"),
    no_ort: bool = typer.Option(False, "--no-ort", help="no model.ort / required_operators.config for onnxruntime"),
    as_zip: bool = typer.Option(False, "--zip", help="also write OUT.zip"),
    oci: bool = typer.Option(False, "--oci", help="also write OUT.oci/, an OCI image layout (CNCF ModelPack media types)"),
) -> None:
    """Package a variant of a finished run for a device team: model, manifest, golden sample, run.py; verified."""
    from compressor.package.build import PackageOptions, build_package
    from compressor.package.container import write_zip
    from compressor.package.oci import write_layout

    options = PackageOptions(target=target, version=version, golden_samples=golden_samples, ort=not no_ort)
    built = build_package(run_dir.expanduser(), variant, out.expanduser(), options)
    console.print(f"package: {built} (verified)", highlight=False)
    if as_zip:
        console.print(f"zip: {write_zip(built, built.with_name(built.name + '.zip'))}", highlight=False)
    if oci:
        console.print(f"oci: {write_layout(built, built.with_name(built.name + '.oci'))}", highlight=False)


@app.command()
def verify(package: Path = typer.Argument(..., help="a package folder, .zip or OCI layout folder")) -> None:
    """Check a package: hashes, schema, no unlisted file / escaping path / symlink / pickle, and the model
    run by its runtime in a fresh process reproducing the golden sample. Exit 1 with one line per failure."""
    from compressor.package.verify import verify_package

    if not package.expanduser().exists():  # bad input (exit 2), not a failed check
        raise CompressorError(f"package '{package}' does not exist; give a package folder, a .zip or an OCI layout "
                              f"folder ('compressor package' writes them).")
    failures = verify_package(package.expanduser())
    for line in failures:
        err_console.print(f"FAIL {line}", highlight=False, soft_wrap=True, markup=False)
    if failures:
        raise typer.Exit(1)
    console.print(f"ok: {package} holds (hashes, schema, files, runtime, golden sample)", highlight=False)


@app.command()
def compare(
    baseline: Path = typer.Argument(..., help="the baseline: a run folder or its results.json"),
    new: Path = typer.Argument(..., help="the new run: a run folder or its results.json"),
    max_drop: float = typer.Option(0.01, "--max-drop", help="largest metric drop allowed (0.01 = one accuracy point)"),
    max_slowdown: float = typer.Option(
        0.10, "--max-slowdown", help="slower is a regression when the whole 95% interval is below 1/(1 + this)"),
    max_growth: float = typer.Option(0.05, "--max-growth", help="largest model file growth allowed (0.05 = 5%)"),
    output_format: str = typer.Option("markdown", "--format", help="markdown or json, printed on stdout"),
    output: Optional[Path] = typer.Option(None, "--output", help="also write it to this file"),
    remeasure_same: bool = typer.Option(
        False, "--remeasure-same", help="re-measure identical model files too (an A/A check of the gate here)"),
) -> None:
    """Regressions between two runs (a CI gate): metric, size, and latency re-measured side by side. Exit 1 on one."""
    from compressor.cache import atomic_write_text
    from compressor.report.compare import compare_markdown
    from compressor.run.compare import Gate, compare_runs

    if output_format not in ("markdown", "json"):
        raise CompressorError(f"--format '{output_format}' is not known; give markdown or json.")
    gate = Gate(max_drop=max_drop, max_slowdown=max_slowdown, max_growth=max_growth, remeasure_same=remeasure_same)
    status = console.status("comparing")
    status.start()
    try:
        found = compare_runs(baseline, new, gate, on_event=lambda kind, **i: status.update(
            f"re-measuring {i['variant']} on {i['target']} batch {i['batch']} (paired rounds)"))
    finally:
        status.stop()
    text = json.dumps(found, indent=2) + "\n" if output_format == "json" else compare_markdown(found)
    if output is not None:
        atomic_write_text(output.expanduser().resolve(), text)
    sys.stdout.write(text)
    raise typer.Exit(0 if found["passed"] else 1)
