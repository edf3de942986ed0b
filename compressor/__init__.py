"""compressor: a model compression and deployment toolchain.

``import compressor`` is light: torch, tensorflow and onnxruntime load only where used.
"""
from __future__ import annotations

from compressor.artifact import Artifact, Lineage, Signature, TensorSpec
from compressor.errors import (
    CompressorError,
    ConfigError,
    ConversionError,
    DataError,
    FormatChainError,
    ModelLoadError,
    PassError,
    RuntimeUnavailableError,
    VerificationError,
)
from compressor.formats import Format

__version__ = "0.1.0"

__all__ = [
    "Artifact", "Lineage", "Signature", "TensorSpec", "Format", "CompressorError", "ConfigError",
    "ConversionError", "DataError", "FormatChainError", "ModelLoadError", "PassError",
    "RuntimeUnavailableError", "VerificationError", "compare", "load_pipeline", "run_pipeline", "search_pipeline",
    "__version__",
]


def load_pipeline(path):  # noqa: ANN001, ANN201 - thin re-export, keeps import light
    """Read and validate a pipeline YAML file (see compressor.run.pipeline.load_pipeline).

    The file's own folder goes first on the import path, so a model factory, a data function or a
    metric in a module beside the pipeline file is found without setting PYTHONPATH (measurement
    workers get the same import path).
    """
    import sys
    from pathlib import Path

    from compressor.run.pipeline import load_pipeline as _load

    folder = str(Path(path).expanduser().resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return _load(path)


def run_pipeline(pipeline, out_dir, **kwargs):  # noqa: ANN001, ANN201
    """Run a loaded pipeline into ``out_dir`` and write its reports; return the results dict.

    See compressor.run.run_pipeline for the keyword arguments.
    """
    from pathlib import Path

    from compressor.report import write_reports
    from compressor.run import run_pipeline as _run
    from compressor.run.lock import run_folder_lock

    with run_folder_lock(Path(out_dir)):  # held through the packages and reports too; the inner run re-enters it
        results = _run(pipeline, out_dir, **kwargs)
        if pipeline.spec.package is not None:
            _package(pipeline, Path(out_dir), results, kwargs.get("on_event"))
        write_reports(results, Path(out_dir))
    return results


def compare(baseline, new, max_drop=0.01, max_slowdown=0.10, max_growth=0.05):  # noqa: ANN001, ANN201
    """Compare a new run against a baseline run (run folders or results.json files), as ``compressor compare``.

    Returns a dict: ``passed`` (no regression), ``regressions`` (one line each), and per variant its
    metric, size and latency rows; latency is re-measured here in paired rounds where both model files
    are in their run folders. See compressor.run.compare.
    """
    from compressor.run.compare import Gate, compare_runs

    return compare_runs(baseline, new, Gate(max_drop=max_drop, max_slowdown=max_slowdown, max_growth=max_growth))


def _package(pipeline, out_dir, results, on_event):  # noqa: ANN001, ANN202
    """The pipeline's ``package:`` section: packages under OUT/packages/, listed in results.json."""
    from compressor.package.per_target import package_run
    from compressor.run.results import write_results

    if on_event:
        on_event("stage", message="packaging")
    results["packages"] = package_run(results, out_dir, pipeline.spec.package, pipeline.spec.targets)
    write_results(out_dir, results)
    for record in results["packages"]:
        problem = record.get("error") or record.get("skipped")
        if record.get("platform", "any") != "any":
            problem = (f"{record['variant']} runs on {record['platform']} only; name a portable variant in "
                       f"package.variants for ARM devices")
        if problem and on_event:
            on_event("warning", message=f"package for {record['target']}: {problem}")


def search_pipeline(pipeline, out_dir, trials, **kwargs):  # noqa: ANN001, ANN201
    """Search a loaded pipeline's ``search:`` section into ``out_dir``, writing the reports after every trial.

    See compressor.run.search_pipeline for the keyword arguments.
    """
    from pathlib import Path

    from compressor.report import write_reports
    from compressor.run import search_pipeline as _search

    return _search(pipeline, out_dir, trials, on_front=lambda results: write_reports(results, Path(out_dir)), **kwargs)
