"""Bring the pipeline's input model into the run's store as the reference artifact.

The input file is never modified: it is copied (or, for a factory model, re-saved) into the cache,
keyed by its content. Importers are chosen from a dict keyed by format.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from compressor.artifact import BATCH, Artifact, Signature, TensorSpec, content_sha256
from compressor.cache import Cache, cache_key
from compressor.errors import ModelLoadError, first_line
from compressor.formats import Format

IMPORTER_VERSION = 1

# format -> "module:function(src, dst_dir) -> (model path in dst_dir, Signature[, meta dict])"
IMPORTERS: dict[Format, str] = {
    Format.ONNX: "compressor.model_import:import_onnx",
    Format.KERAS: "compressor.passes.convert._tf:import_keras",
    Format.SAVED_MODEL: "compressor.passes.convert._tf:import_saved_model",
    Format.TFLITE: "compressor.passes.convert._litert:import_tflite",
    Format.ORT: "compressor.passes.convert._onnx:import_ort",
}


def import_onnx(src: Path, dst_dir: Path) -> tuple[Path, Signature]:
    from compressor.passes.convert._torch import onnx_signature
    from compressor.passes.optimize._onnx import load_onnx

    load_onnx(src)  # raises a clear ModelLoadError for a corrupt file
    dst = dst_dir / "model.onnx"
    shutil.copyfile(src, dst)
    return dst, onnx_signature(dst)


def _named_inputs(module: Any, sample: np.ndarray | dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One array is the model's only input ("input"); several are matched to forward()'s parameters."""
    import inspect

    if not isinstance(sample, dict):
        return {"input": sample}
    if len(sample) == 1:
        return {"input": next(iter(sample.values()))}
    params = [p for p in inspect.signature(module.forward).parameters if p in sample]
    if len(params) != len(sample):
        raise ModelLoadError(
            f"the data has inputs {sorted(sample)} but the model's forward() takes "
            f"{list(inspect.signature(module.forward).parameters)}; name the arrays 'x.<parameter>'."
        )
    return {p: sample[p] for p in params}


def _torch_signature(module: Any, sample: np.ndarray | dict[str, np.ndarray]) -> Signature:
    import torch

    named = _named_inputs(module, sample)
    args = [torch.from_numpy(np.ascontiguousarray(a[:2])) for a in named.values()]
    with torch.inference_mode():
        out = module.eval()(*args)
    outs = out if isinstance(out, (tuple, list)) else [out]
    return Signature(
        inputs=tuple(TensorSpec(n, (BATCH, *a.shape[1:]), str(a.dtype)) for n, a in named.items()),
        outputs=tuple(TensorSpec("output" if len(outs) == 1 else f"output_{i}", (BATCH, *o.shape[1:]),
                                 str(o.dtype).replace("torch.", "")) for i, o in enumerate(outs)),
    )


def import_torch_factory(spec: Any, resolve: Any, sample: np.ndarray | dict[str, np.ndarray],
                         cache: Cache) -> Artifact:
    """Build the factory's module, load its safetensors weights, store it as a torch model folder."""
    from backends._torch import build_module, save_module

    weights = resolve(spec.weights) if spec.weights else None
    if weights is not None and not weights.is_file():
        raise ModelLoadError(
            f"model weights file '{weights}' does not exist; train the sample first or fix model.weights."
        )
    if spec.input_shape:
        sample = np.zeros((2, *spec.input_shape), dtype=np.float32)
    arrays = sample if isinstance(sample, dict) else {"input": sample}
    shapes = [[k, list(a.shape[1:]), str(a.dtype)] for k, a in arrays.items()]
    if len(shapes) == 1:  # keys of single-input models as before
        shapes = shapes[0][1:]
    key = cache_key("import.torch", IMPORTER_VERSION, spec.factory, spec.kwargs,
                    content_sha256(weights) if weights else None, *shapes)
    hit = cache.get(key)
    if hit:
        return hit[0]
    module = build_module(spec.factory, spec.kwargs)
    if weights is not None:
        from safetensors.torch import load_file

        try:
            module.load_state_dict(load_file(str(weights)), strict=True)
        except Exception as exc:
            raise ModelLoadError(
                f"weights '{weights}' do not fit factory '{spec.factory}': {first_line(exc, 200)}; "
                f"check model.kwargs or retrain."
            ) from None
    signature = _torch_signature(module, sample)
    with cache.staging() as tmp:
        folder = save_module(module, spec.factory, spec.kwargs, tmp / "model")
        art = Artifact(Format.TORCH, folder, signature, content_sha256(folder))
        return cache.commit(key, tmp, art, {"source": spec.factory})


def import_file(path: Path, cache: Cache) -> Artifact:
    """Copy a model file into the cache and read its signature."""
    from compressor.formats import detect_format
    from compressor.registry import load_attr

    fmt = detect_format(path)
    if fmt not in IMPORTERS:
        raise ModelLoadError(
            f"input models of format '{fmt.value}' are not supported in this installation "
            f"(supported: {', '.join(sorted(f.value for f in IMPORTERS))}, or model.factory for PyTorch)."
        )
    sha = content_sha256(path)
    key = cache_key("import.file", IMPORTER_VERSION, fmt.value, sha)
    hit = cache.get(key)
    if hit:
        return hit[0]
    with cache.staging() as tmp:
        dst_dir = tmp / "model"
        dst_dir.mkdir()
        model_path, signature, *extra = load_attr(IMPORTERS[fmt])(path, dst_dir)
        meta = extra[0] if extra else {}  # format facts, e.g. which Keras generation wrote the file
        art = Artifact(fmt, model_path, signature, content_sha256(model_path), meta=meta)
        return cache.commit(key, tmp, art, {"source": str(path)})


def describe_source(spec: Any) -> str:
    return spec.path or json.dumps({"factory": spec.factory, "weights": spec.weights})
