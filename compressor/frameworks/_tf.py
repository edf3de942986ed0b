"""TensorFlow / Keras facts: load and save Keras models (both generations) and SavedModels,
their signatures, and what a Keras file holds.

Two Keras generations live side by side. Keras 3 (``import keras``) is what TensorFlow 2.16+
uses for ``tf.keras``; tf-keras (``import tf_keras``, Keras 2) is what
tensorflow-model-optimization needs. A model file says which one wrote it (the ``keras_version``
in a .keras archive's metadata.json or an .h5 file's attributes); this module always loads a model
with the generation that wrote it and never goes through ``tf.keras``, whose meaning depends on
the ``TF_USE_LEGACY_KERAS`` environment variable (importing tfmot sets it process-wide)."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import warnings
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from compressor.artifact import BATCH, Artifact, Signature, TensorSpec
from compressor.errors import ModelLoadError, PassError, first_line


def inspect_keras(path: Path) -> dict[str, Any]:
    generation = keras_generation(path)
    model = load_keras(path, generation)
    kernels = [w.numpy() for layer in model.layers for w in layer.weights if "kernel" in w.name]
    zeros = sum(int(np.sum(k == 0)) for k in kernels)
    total = sum(k.size for k in kernels)
    signature = keras_signature(model)
    return {
        "keras": generation,
        "inputs": [{"name": s.name, "shape": list(s.shape), "dtype": s.dtype} for s in signature.inputs],
        "outputs": [{"name": s.name, "shape": list(s.shape), "dtype": s.dtype} for s in signature.outputs],
        "layout": signature.layout,
        "parameters": int(model.count_params()),
        "weight_sparsity": round(zeros / total, 4) if total else 0.0,
        "layers": dict(Counter(type(layer).__name__ for layer in model.layers).most_common()),
    }


KERAS3 = "keras3"


TF_KERAS = "tf_keras"


TFMOT_QAT = "tfmot_qat"  # meta["keras_custom"]: the model holds tfmot quantize wrappers


def quiet_tensorflow() -> None:
    """Keep TensorFlow's C++ info lines off the console (set before the first TF import)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _h5_attrs(path: Path) -> dict[str, Any]:
    import h5py

    try:
        with h5py.File(path, "r") as fh:
            return {k: (v.decode() if isinstance(v, bytes) else v) for k, v in fh.attrs.items()}
    except OSError as exc:
        raise ModelLoadError(
            f"'{path}' is not a readable HDF5 (.h5) Keras file ({first_line(exc, 120)}); "
            f"it may be truncated: save the model again."
        ) from None


def _keras_zip_metadata(path: Path) -> dict[str, Any]:
    try:
        with zipfile.ZipFile(path) as zf:
            return json.loads(zf.read("metadata.json"))
    except (zipfile.BadZipFile, KeyError, ValueError, OSError):
        raise ModelLoadError(
            f"'{path}' is not a valid .keras archive (a zip with metadata.json); it may be truncated "
            f"or not a Keras file: save the model again with model.save('model.keras')."
        ) from None


def keras_generation(path: Path) -> str:
    """``keras3`` or ``tf_keras``: the Keras generation that wrote the file at ``path``."""
    path = Path(path)
    if path.suffix.lower() == ".h5":
        attrs = _h5_attrs(path)
        version = str(attrs.get("keras_version", ""))
        if "model_config" not in attrs:
            raise ModelLoadError(
                f"'{path}' holds no model config (weights only?); save the whole model "
                f"(model.save('model.h5')), not only its weights."
            )
    else:
        version = str(_keras_zip_metadata(path).get("keras_version", ""))
    if not version[:1].isdigit():
        raise ModelLoadError(f"'{path}' does not say which Keras version wrote it; save it again with Keras.")
    return KERAS3 if int(version.split(".")[0]) >= 3 else TF_KERAS


# what a Keras config holds where a layer carries Python code: a Lambda layer, Keras 3's serialized
# lambda, tf-keras's marshalled function (function_type / output_shape_type beside the bytecode)
CODE_CLASSES = frozenset({"Lambda", "__lambda__"})
CODE_KEYS = frozenset({"__lambda__", "__bytecode__", "function_type", "output_shape_type"})


def keras_config(path: Path) -> Any:
    """The model config a Keras file holds, parsed as JSON (nothing deserialized): the .h5 file's
    ``model_config`` attribute or the .keras archive's config.json."""
    path = Path(path)
    text: Any = None
    if path.suffix.lower() == ".h5":
        text = _h5_attrs(path).get("model_config")
    else:
        with contextlib.suppress(zipfile.BadZipFile, KeyError, OSError), zipfile.ZipFile(path) as zf:
            text = zf.read("config.json")
    try:
        return json.loads(text)
    except (TypeError, ValueError):  # no config, or not JSON
        raise ModelLoadError(f"'{path}' holds no readable model config (JSON); save the whole model again "
                             f"with model.save(...).") from None


def code_in_config(node: Any, layer: str = "") -> str | None:
    """The name of the first layer whose config holds Python code; None when no layer does."""
    if isinstance(node, list):
        return next((found for item in node if (found := code_in_config(item, layer)) is not None), None)
    if not isinstance(node, dict):
        return None
    config = node.get("config")
    if isinstance(config, dict) and isinstance(config.get("name"), str):
        layer = config["name"]
    if node.get("class_name") in CODE_CLASSES or CODE_KEYS & node.keys() or isinstance(node.get("function"), list):
        return layer or str(node.get("class_name", "?"))
    return next((found for value in node.values() if (found := code_in_config(value, layer)) is not None), None)


def refuse_code(path: Path) -> None:
    """Refuse a Keras file whose config holds Python code, before any layer is deserialized."""
    layer = code_in_config(keras_config(path))
    if layer is not None:
        raise ModelLoadError(
            f"Keras model '{path}' has layer '{layer}' holding Python code (a Lambda layer or a serialized "
            f"function) that would run on load; compressor never loads one: replace it with a built-in or "
            f"registered layer and save the model again."
        )


def _tf_keras_safe_mode() -> Any:
    """tf-keras's safe-mode scope: its .h5 loader takes no safe_mode argument, but its Lambda honours the scope."""
    try:
        from tf_keras.src.saving.serialization_lib import SafeModeScope
    except ImportError:  # another tf-keras layout: the config walk above still refuses every Lambda
        return contextlib.nullcontext()
    return SafeModeScope(True)


def _tfmot_scope() -> Any:
    from tensorflow_model_optimization.quantization.keras import quantize_scope

    return quantize_scope()


def load_keras(path: Path, generation: str | None = None, custom: str | None = None) -> Any:
    """Load a Keras model with the generation that wrote it (no compile, safe mode)."""
    quiet_tensorflow()
    path = Path(path)
    generation = generation or keras_generation(path)
    refuse_code(path)  # read as JSON and walked: a Lambda is refused before any layer is built
    try:
        if generation == KERAS3:
            import keras

            return keras.saving.load_model(str(path), compile=False, safe_mode=True)
        import tf_keras

        scope = _tfmot_scope() if custom == TFMOT_QAT else contextlib.nullcontext()
        with scope, _tf_keras_safe_mode():
            if path.suffix.lower() == ".h5":
                return tf_keras.models.load_model(str(path), compile=False)
            return tf_keras.models.load_model(str(path), compile=False, safe_mode=True)
    except ModelLoadError:
        raise
    except Exception as exc:
        detail = first_line(exc, 200)
        hint = ("it was written by Keras 3; load it with 'import keras'" if generation == KERAS3
                else "it was written by tf-keras (Keras 2); tf_keras must be installed")
        raise ModelLoadError(f"cannot load Keras model '{path}' ({hint}): {detail}.") from None


def save_keras(model: Any, path: Path) -> Path:
    """Save a Keras model (either generation) to ``path`` (.keras or .h5)."""

    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf-keras calls .h5 "legacy"; it is what tfmot models load from
        model.save(str(path), include_optimizer=False)
    return path


def _dtype_name(dtype: Any) -> str:
    return str(getattr(dtype, "name", dtype))


def keras_signature(model: Any) -> Signature:
    """Input/output names, shapes and dtypes of a built Keras model; NHWC for 4-D inputs."""
    try:
        inputs, outputs = list(model.inputs), list(model.outputs)
    except (AttributeError, ValueError):
        inputs, outputs = [], []
    if not inputs:
        raise ModelLoadError(
            "the Keras model has no known inputs (a subclassed model that was never built?); "
            "use a Sequential model with keras.Input(...) or a Functional model."
        )

    def spec(tensor: Any, name: str) -> TensorSpec:
        shape = tuple(tensor.shape)
        dims = (BATCH, *[d if d is not None else f"dim{i + 1}" for i, d in enumerate(shape[1:])])
        return TensorSpec(name, dims, _dtype_name(tensor.dtype))

    in_specs = tuple(spec(t, _tensor_name(t, f"input_{i}")) for i, t in enumerate(inputs))
    out_specs = tuple(spec(t, "output" if len(outputs) == 1 else f"output_{i}") for i, t in enumerate(outputs))
    layout = "NHWC" if any(len(s.shape) == 4 for s in in_specs) else "NCHW"
    return Signature(in_specs, out_specs, layout)


def _tensor_name(tensor: Any, default: str) -> str:
    name = str(getattr(tensor, "name", "") or default)
    return name.split(":")[0].replace("/", "_") or default


def load_saved_model(path: Path) -> tuple[Any, Any]:
    """Load a SavedModel folder; return (the loaded object, its serving_default function)."""
    quiet_tensorflow()
    import tensorflow as tf

    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as exc:
        detail = first_line(exc, 200)
        raise ModelLoadError(f"cannot load SavedModel '{path}': {detail}; export it again.") from None
    signatures = dict(getattr(loaded, "signatures", {}) or {})
    if "serving_default" not in signatures:
        found = ", ".join(signatures) or "none"
        raise ModelLoadError(
            f"SavedModel '{path}' has no 'serving_default' signature (signatures: {found}), so its inputs "
            f"cannot be read; export it with model.export(dir) (Keras 3) or "
            f"tf.saved_model.save(model, dir, signatures=fn.get_concrete_function(spec))."
        )
    return loaded, signatures["serving_default"]


def saved_model_signature(path: Path) -> Signature:
    """The serving_default signature's inputs and outputs; NHWC for 4-D image-like inputs."""
    _, fn = load_saved_model(path)
    in_specs = fn.structured_input_signature[1]
    out_specs = fn.structured_outputs

    def spec(name: str, ts: Any) -> TensorSpec:
        shape = ts.shape.as_list() if ts.shape.rank is not None else []
        dims = tuple(BATCH if i == 0 else (d if d is not None else f"dim{i}") for i, d in enumerate(shape))
        return TensorSpec(name, dims, ts.dtype.name)

    inputs = tuple(spec(n, ts) for n, ts in sorted(in_specs.items()))
    outputs = tuple(spec(n, ts) for n, ts in sorted(out_specs.items()))
    return Signature(inputs, outputs, _guess_layout(inputs))


def _guess_layout(inputs: tuple[TensorSpec, ...]) -> str:
    """TensorFlow's convention is NHWC; call a 4-D input NCHW only when it plainly is (1/3 channels first)."""
    for s in inputs:
        if len(s.shape) == 4:
            c_first, c_last = s.shape[1], s.shape[3]
            if c_first in (1, 3) and isinstance(c_last, int) and c_last > 4:
                return "NCHW"
            return "NHWC"
    return "NCHW"


def keras_call(model: Any, signature: Signature) -> Any:
    """A tf.function running ``model`` in inference mode with a symbolic batch dimension."""
    import tensorflow as tf

    specs = [tf.TensorSpec([None, *[d if isinstance(d, int) else None for d in s.shape[1:]]], s.dtype, name=s.name)
             for s in signature.inputs]

    def call(*xs: Any) -> Any:
        out = model(xs[0] if len(xs) == 1 else list(xs), training=False)
        if isinstance(out, dict):
            return [out[k] for k in sorted(out)]
        return list(out) if isinstance(out, (list, tuple)) else [out]

    return tf.function(call, input_signature=specs)


def import_keras(src: Path, dst_dir: Path) -> tuple[Path, Signature, dict[str, Any]]:
    """Copy a .keras / .h5 file into the store; read its signature; record its Keras generation."""
    generation = keras_generation(src)
    model = load_keras(src, generation)
    dst = dst_dir / f"model{src.suffix.lower()}"
    shutil.copyfile(src, dst)
    return dst, keras_signature(model), {"keras": generation}


def import_saved_model(src: Path, dst_dir: Path) -> tuple[Path, Signature]:
    """Copy a SavedModel folder into the store and read its serving_default signature."""
    signature = saved_model_signature(src)
    dst = dst_dir / "saved_model"
    shutil.copytree(src, dst)
    return dst, signature


def keras_module(artifact: Artifact) -> Any:
    """A tf.Module holding the model's variables and a ``serve`` tf.function with a symbolic batch."""
    import tensorflow as tf

    model = load_keras(Path(artifact.path), artifact.meta.get("keras"), artifact.meta.get("keras_custom"))
    module = tf.Module()
    # Keras 3 wraps tf.Variables (``.value``); tracking them makes the converters freeze them
    module.variables_ = [getattr(v, "value", v) for v in model.variables]
    module.model = model
    module.serve = keras_call(model, artifact.signature)
    return module


def require_tf_keras(artifact: Artifact, pass_name: str) -> None:
    """Refuse a Keras 3 model: tensorflow-model-optimization needs tf-keras (Keras 2)."""
    generation = artifact.meta.get("keras") or keras_generation(Path(artifact.path))
    if generation != TF_KERAS:
        raise PassError(
            f"{pass_name} on Keras models uses tensorflow-model-optimization, which works only with tf-keras "
            f"(Keras 2) models, and this model was written by Keras 3. Put convert.tf_keras before it (rebuilds "
            f"the model in tf-keras), or save the model with tf_keras (import tf_keras; ...; "
            f"model.save('model.h5')) and use that file as the input."
        )
