"""Build a deployment package from a finished run folder: the model as its runtime loads it (with the
manifest's facts inside it), manifest.json, a golden sample, run.py; verified before it is put in place."""
from __future__ import annotations

import datetime
import io
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from compressor.artifact import BATCH
from compressor.cache import atomic_write_bytes, temp_sibling
from compressor.errors import CompressorError, ModelLoadError
from compressor.package.manifest import (
    MANIFEST,
    RUNTIME_PACKAGES,
    PackageManifest,
    embedded_facts,
    file_sha256,
)
from compressor.package.preprocessing import describe, raw_samples

RUNTIME_FORMATS = {"onnxruntime": ("onnx", "ort"), "litert": ("tflite",)}
GOLDEN = "golden.npz"
LEDGER_KEYS = ("pass", "config", "format_in", "format_out", "artifact", "metric", "metric_drop", "within_budget",
               "parity", "coverage", "seconds")


class PackageError(CompressorError):
    """A package cannot be built from what the run folder holds."""


@dataclass(frozen=True)
class PackageOptions:
    """How to package one variant: for which target, its version, the golden sample's size, extras."""

    target: str | None = None
    version: str = "1.0.0"
    golden_samples: int = 4
    ort: bool = True
    labels: tuple[str, ...] | None = None
    selected_by: str = "named on the command line"


def read_results(run_dir: Path) -> dict[str, Any]:
    """A run folder's results.json, refused with one line when missing or unreadable."""
    path = Path(run_dir) / "results.json"
    if not path.is_file():
        raise PackageError(f"'{run_dir}' has no results.json; give a run folder ('compressor run ... --out DIR').")
    try:
        return json.loads(path.read_text())
    except ValueError:
        raise PackageError(f"'{path}' is not valid JSON; run the pipeline again to rewrite it.") from None


def find_variant(results: dict[str, Any], name: str) -> dict[str, Any]:
    """The named variant of a run, completed and with an artifact."""
    from compressor.errors import unknown_name

    found = {v["name"]: v for v in results["variants"]}
    if name not in found:
        raise unknown_name("variant", name, found, "Check --variant.")
    variant = found[name]
    if variant.get("status") != "ok" or not variant.get("artifact"):
        raise PackageError(f"variant '{name}' did not complete in this run ({variant.get('error', 'no artifact')}); "
                           f"package a completed variant.")
    return variant


def build_package(run_dir: Path, variant_name: str, out: Path, options: PackageOptions = PackageOptions()) -> Path:
    """Write the package of ``variant_name`` from ``run_dir`` to the folder ``out`` (replaced if present).

    The folder is assembled beside ``out`` and verified (``verify_package``: hashes, schema, the model
    in a fresh process reproducing the golden sample) before it is renamed into place.
    """
    from compressor.package.verify import verify_package

    run_dir, out = Path(run_dir).resolve(), Path(out).resolve()
    results = read_results(run_dir)
    variant = find_variant(results, variant_name)
    fmt, runtime, device = _target(variant, options.target)
    source = run_dir / variant["artifact"]["path"]
    if not source.is_file() or file_sha256(source) != variant["artifact"]["sha256"]:
        raise PackageError(f"'{source}' is missing or no longer the artifact the run recorded (sha256 differs); "
                           f"run the pipeline again to restore it.")
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = temp_sibling(out)
    stage.mkdir()
    try:
        _assemble(stage, results, variant, source, fmt, f"{runtime}:{device}", options, run_dir)
        failures = verify_package(stage)
        if failures:
            raise PackageError(f"the package of '{variant_name}' fails its own verification: {failures[0]}")
        _replace(stage, out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return out


def _target(variant: dict[str, Any], target: str | None) -> tuple[str, str, str]:
    fmt = variant["artifact"]["format"]
    able = [rt for rt, formats in RUNTIME_FORMATS.items() if fmt in formats]
    if not able:
        raise PackageError(f"variant '{variant['name']}' is a '{fmt}' model; packages hold onnx, ort or tflite "
                           f"models: package a variant ending in convert.onnx or convert.tflite.")
    runtime, _, device = (target or f"{able[0]}:cpu").partition(":")
    if runtime not in able:
        raise PackageError(f"target '{target}' cannot run variant '{variant['name']}' ('{fmt}'); use --target "
                           f"{able[0]}:cpu.")
    if (device or "cpu") != "cpu":
        raise PackageError(f"target '{target}': packages are verified on cpu only; use --target {runtime}:cpu.")
    return fmt, runtime, "cpu"


def _assemble(stage: Path, results: dict[str, Any], variant: dict[str, Any], source: Path, fmt: str, target: str,
              options: PackageOptions, run_dir: Path) -> None:
    from compressor.package import _litert, _onnx
    from compressor.package.run_template import open_model, predict

    runtime = target.partition(":")[0]
    model = stage / f"model.{fmt}"
    shutil.copyfile(source, model)
    run, seen = open_model(model, runtime)
    samples = _samples(run_dir, results, options.golden_samples)
    data = (results.get("provenance") or {}).get("spec", {}).get("data", {})
    layout = _layout(seen, samples)
    prep, known_labels = describe(data, layout)
    signature = _signature(seen, layout)
    inputs = {k: v[:options.golden_samples] for k, v in _model_inputs(signature, samples, layout).items()}
    golden = {f"input.{k}": v for k, v in inputs.items()}
    if prep is not None:
        _check_raw(prep, raw := raw_samples(data, options.golden_samples), inputs)
        golden.update({f"raw.{signature['inputs'][0]['name']}": raw})
    outputs = predict(run, signature, inputs, options.golden_samples)
    golden.update({f"output.{k}": v for k, v in outputs.items()})
    if "y" in samples:
        golden["label"] = samples["y"][:options.golden_samples]
    facts = _facts(results, variant, signature, prep, list(options.labels or known_labels or []) or None,
                   target, options, outputs)
    if fmt == "onnx":
        facts["runtime"]["platform"] = _onnx.platform(model)
    with_ort = runtime == "onnxruntime" and options.ort and fmt == "onnx"
    if with_ort:
        facts["models"].append({"path": "model.ort", "format": "ort", "required_operators": "required_operators.config"})
    facts = embedded_facts(PackageManifest(**facts, files=[]).model_dump(mode="json"))  # as verify will read them
    (_onnx.embed if runtime == "onnxruntime" else _litert.embed)(model, facts)
    rerun = predict(open_model(model, runtime)[0], signature, inputs, options.golden_samples)
    if any(not np.array_equal(rerun[k], outputs[k]) for k in outputs):
        raise PackageError(f"writing the metadata into {model.name} changed its outputs; report this as a bug.")
    if with_ort:  # made from the file with the facts inside, so the .ort holds them too
        _onnx.to_ort(model, stage / "model.ort", stage / "required_operators.config")
    buffer = io.BytesIO()
    np.savez(buffer, **golden)
    atomic_write_bytes(stage / GOLDEN, buffer.getvalue())
    shutil.copyfile(Path(__file__).with_name("run_template.py"), stage / "run.py")
    files = [{"path": p.name, "sha256": file_sha256(p), "size_bytes": p.stat().st_size}
             for p in sorted(stage.iterdir()) if p.name != MANIFEST]
    manifest = PackageManifest(**facts, files=files).model_dump(mode="json")
    (stage / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")


def _samples(run_dir: Path, results: dict[str, Any], count: int) -> dict[str, np.ndarray]:
    name = (results.get("provenance") or {}).get("samples_file")
    path = run_dir / name if name else None
    if path is None or not path.is_file():
        raise PackageError(f"run folder '{run_dir}' holds no evaluation samples (it was made before packaging "
                           f"existed); run the pipeline again into it (the cache makes that quick).")
    with np.load(path, allow_pickle=False) as archive:
        samples = {k: archive[k] for k in archive.files}
    if any(k.startswith(("axis.", "const.")) for k in samples):
        raise PackageError("packages of models fed constants (data.constants) or batched on another axis "
                           "(data.batch_axis) are not supported yet; package a model fed only its samples.")
    have = len(samples.get("y", next(v for k, v in samples.items() if k.startswith("x."))))
    if have < count:
        raise PackageError(f"golden_samples = {count} but the run kept {have} evaluation samples; ask for at most {have}.")
    return samples


def _check_raw(prep: dict[str, Any], raw: np.ndarray, inputs: dict[str, np.ndarray]) -> None:
    """run.py's preprocessing of the raw samples must give the inputs the run evaluated."""
    from compressor.package.run_template import preprocess

    if len(inputs) != 1:
        raise PackageError(f"a built-in image source feeds one input, but the model has {sorted(inputs)}.")
    want = next(iter(inputs.values()))
    got = preprocess(raw, prep)
    if got.shape != want.shape or float(np.max(np.abs(got - want))) > 1e-5:
        raise PackageError(f"the manifest's preprocessing of the raw samples does not give the run's inputs "
                           f"(shapes {got.shape} vs {want.shape}); report this as a bug.")


def _layout(seen: dict[str, Any], samples: dict[str, np.ndarray]) -> str:
    """NHWC when the model's 4-D input ends in the channels of the NCHW samples, else NCHW."""
    arrays = [v for k, v in samples.items() if k.startswith("x.")]
    first = seen["inputs"][0]["shape"]
    if len(arrays) == 1 and arrays[0].ndim == 4 and len(first) == 4:
        channels, width = arrays[0].shape[1], arrays[0].shape[3]
        if first[3] == channels and first[3] != width:
            return "NHWC"
    return "NCHW"


def _signature(seen: dict[str, Any], layout: str) -> dict[str, Any]:
    """The runtime's view of the model with its batch dim named "batch" and other symbolic dims "dim_<i>"."""
    def tensor(t: dict[str, Any]) -> dict[str, Any]:
        shape = [d if d is not None else (BATCH if i == 0 else f"dim_{i}") for i, d in enumerate(t["shape"])]
        return {"name": t["name"], "shape": shape, "dtype": t["dtype"], "quantization": t.get("quantization")}

    return {"layout": layout, "inputs": [tensor(t) for t in seen["inputs"]],
            "outputs": [tensor(t) for t in seen["outputs"]]}


def _model_inputs(signature: dict[str, Any], samples: dict[str, np.ndarray], layout: str) -> dict[str, np.ndarray]:
    """The run's samples as the model's float inputs (by position for one input, else by name)."""
    arrays = {k[2:]: v for k, v in samples.items() if k.startswith("x.")}
    specs = signature["inputs"]
    if len(specs) == 1 and len(arrays) == 1:
        pairs = [(specs[0], next(iter(arrays.values())))]
    else:
        missing = [t["name"] for t in specs if t["name"] not in arrays]
        if missing:
            raise PackageError(f"the model needs inputs {missing} but the run's samples hold {sorted(arrays)}.")
        pairs = [(t, arrays[t["name"]]) for t in specs]
    inputs = {}
    for spec, arr in pairs:
        if layout == "NHWC" and arr.ndim == 4:
            arr = arr.transpose(0, 2, 3, 1)
        dtype = "float32" if spec.get("quantization") else spec["dtype"]
        inputs[spec["name"]] = np.ascontiguousarray(arr.astype(dtype))
    return inputs


def _tolerance(signature: dict[str, Any], outputs: dict[str, np.ndarray]) -> float:
    """Absolute tolerance of the golden outputs: float rounding of their magnitude, plus one quantum for
    integer outputs (another CPU's int8 kernels may round one step apart)."""
    atol = 1e-5
    for t in signature["outputs"]:
        magnitude = float(np.max(np.abs(outputs[t["name"]]))) if outputs[t["name"]].size else 0.0
        quantum = t["quantization"]["scale"] if t.get("quantization") else 0.0
        atol = max(atol, 1e-4 * magnitude + 2 * quantum)
    return float(f"{atol:.3g}")


def _facts(results: dict[str, Any], variant: dict[str, Any], signature: dict[str, Any], prep: dict[str, Any] | None,
           labels: list[str] | None, target: str, options: PackageOptions,
           outputs: dict[str, np.ndarray]) -> dict[str, Any]:
    runtime, _, device = target.partition(":")
    env = results.get("environment", {})
    packages = env.get("packages", {})
    runtime_info = {"name": runtime, "package": RUNTIME_PACKAGES[runtime], "device": device,
                    "min_version": packages.get(RUNTIME_PACKAGES[runtime]) or _installed(RUNTIME_PACKAGES[runtime]),
                    "provider": "CPUExecutionProvider" if runtime == "onnxruntime" else None,
                    "delegate": "xnnpack" if runtime == "litert" else None}
    fmt = variant["artifact"]["format"]
    provenance = results.get("provenance") or {}
    spec = provenance.get("spec", {})
    metric = results["metric"]
    latency = [{"batch_size": b["batch_size"], "threads": b["threads"], "p50_ms": b["p50_ms"], "p90_ms": b.get("p90_ms"),
                "throughput_per_s": b.get("throughput_per_s")}
               for b in variant.get("benchmarks", []) if f"{b['runtime']}:{b['device']}" == target and "p50_ms" in b]
    return {
        "name": f"{results['pipeline']}-{variant['name']}", "version": options.version,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "target": target, "runtime": runtime_info, "models": [{"path": f"model.{fmt}", "format": fmt}],
        "signature": signature, "preprocessing": prep, "labels": labels,
        "metric": {"name": metric["name"], "value": variant["metric"], "reference_value": results["reference"]["metric"],
                   "drop": variant["metric_drop"], "higher_is_better": metric["higher_is_better"],
                   "evaluation_samples": results.get("data", {}).get("evaluation_samples")},
        "budget": {"max_drop": results["budget"]["max_drop"], "within_budget": variant["within_budget"]},
        "latency": latency,
        "ledger": [{k: e[k] for k in LEDGER_KEYS if k in e} for e in variant.get("ledger", [])],
        "provenance": {
            "reference_sha256": results["reference"]["sha256"], "reference_source": results["reference"].get("source"),
            "variant": variant["name"], "variant_sha256": variant["artifact"]["sha256"],
            "pipeline": {"name": results["pipeline"], "file": provenance.get("pipeline_file"),
                         "sha256": provenance.get("pipeline_sha256"), "spec": spec},
            "selected_by": options.selected_by,
            "tool": {"compressor": _version("compressor"), "python": sys.version.split()[0]},
            "libraries": {k: str(v) for k, v in packages.items()},
        },
        "golden": {"path": GOLDEN, "samples": options.golden_samples, "atol": _tolerance(signature, outputs),
                   "rtol": 1e-4, "raw_inputs": prep is not None},
    }


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"


def _installed(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        raise ModelLoadError(f"runtime package '{package}' is not installed; pip install {package}.") from None


def _replace(stage: Path, out: Path) -> None:
    """Put the staged folder at ``out``; an older package there is moved aside first, then removed."""
    if out.exists() and not out.is_dir():
        raise PackageError(f"--out '{out}' is a file; give a folder path for the package.")
    from compressor.package.container import replace_folder

    replace_folder(stage, out)
