"""Bring the pipeline's input model into the run's store as the reference artifact.

The input file is never modified: it is copied (or, for a factory model, re-saved) into the cache,
keyed by its content. The importer of each format comes from the one table in ``frameworks``."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from compressor.artifact import Artifact, content_sha256
from compressor.cache import Cache, cache_key
from compressor.errors import ModelLoadError, first_line
from compressor.formats import Format
from compressor.frameworks import function_for
from compressor.frameworks._torch import torch_signature

IMPORTER_VERSION = 1

def import_torch_factory(spec: Any, resolve: Any, sample: np.ndarray | dict[str, np.ndarray],
                         cache: Cache) -> Artifact:
    """Build the factory's module, load its safetensors weights, store it as a torch model folder."""
    from compressor.frameworks._torch import build_module, save_module

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
    import torch

    # without weights the factory's own initialisation is the model: seed it, so the same pipeline
    # gives the same reference in every run (the cache key cannot tell two random draws apart)
    torch.manual_seed(0)
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
    signature = torch_signature(module, sample)
    with cache.staging() as tmp:
        folder = save_module(module, spec.factory, spec.kwargs, tmp / "model")
        art = Artifact(Format.TORCH, folder, signature, content_sha256(folder))
        return cache.commit(key, tmp, art, {"source": spec.factory})


def import_file(path: Path, cache: Cache) -> Artifact:
    """Copy a model file into the cache and read its signature."""
    from compressor.formats import detect_format

    fmt = detect_format(path)
    importer = function_for(fmt, "importer", f"model.path '{path}'",
                            "for a PyTorch model give model.factory (+ weights) instead" if fmt == Format.TORCH else "")
    sha = content_sha256(path)
    key = cache_key("import.file", IMPORTER_VERSION, fmt.value, sha)
    hit = cache.get(key)
    if hit:
        return hit[0]
    with cache.staging() as tmp:
        dst_dir = tmp / "model"
        dst_dir.mkdir()
        model_path, signature, *extra = importer(path, dst_dir)
        meta = extra[0] if extra else {}  # format facts, e.g. which Keras generation wrote the file
        art = Artifact(fmt, model_path, signature, content_sha256(model_path), meta=meta)
        return cache.commit(key, tmp, art, {"source": str(path)})


def describe_source(spec: Any) -> str:
    return spec.path or json.dumps({"factory": spec.factory, "weights": spec.weights})
