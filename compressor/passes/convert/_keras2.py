"""Keras 3 -> tf-keras (Keras 2): rebuild a Sequential / Functional model of built-in layers.

Keras 3 configs differ from Keras 2 ones in small ways (dtype policies as objects, ``batch_shape``,
node references as tensors, new initializer arguments). The rebuild translates the config, keeps
only the arguments each tf-keras class accepts, builds the model with tf-keras and copies the
weights in order; the run step's parity check then proves the two models compute the same thing.
"""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from compressor.artifact import Artifact
from compressor.errors import ConversionError, first_line

# keyword arguments every tf-keras layer takes besides its own (Layer.__init__'s allowed_kwargs)
LAYER_KWARGS = {"name", "trainable", "dtype", "dynamic", "input_dim", "input_shape", "batch_input_shape",
                "batch_size", "weights", "activity_regularizer", "autocast", "implementation"}
DTYPE_POLICIES = {"DTypePolicy", "FloatDTypePolicy"}


def _accepted(cls: Any) -> set[str] | None:
    """The keyword arguments ``cls.__init__`` names; None when it takes **kwargs it passes on."""
    params = inspect.signature(cls.__init__).parameters
    return {n for n, p in params.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)} - {"self"}


def _node_refs(value: Any, out: list[list[Any]]) -> None:
    """Keras 3 inbound-node arguments hold '__keras_tensor__' entries; collect their keras_history."""
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            layer, node, tensor = value["config"]["keras_history"]
            out.append([layer, node, tensor, {}])
            return
        for v in value.values():
            _node_refs(v, out)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _node_refs(v, out)


def _object(value: dict[str, Any], registry: dict[str, Any]) -> Any:
    """A serialized object ({class_name, config, module...}) in tf-keras form."""
    name = value.get("class_name")
    if name in DTYPE_POLICIES:
        return value["config"]["name"]
    config = {k: translate(v) for k, v in (value.get("config") or {}).items()}
    cls = registry.get(name)
    if cls is not None:
        accepted = _accepted(cls)
        config = {k: v for k, v in config.items() if k in accepted}
    return {"class_name": name, "config": config}


def translate(value: Any) -> Any:
    """Translate a Keras 3 config (or part of it) into what tf-keras' from_config reads."""
    import tf_keras

    if isinstance(value, list):
        return [translate(v) for v in value]
    if not isinstance(value, dict):
        return value
    module = str(value.get("module") or "")
    if "class_name" in value and "config" in value and module.startswith("keras.") and module != "keras.layers":
        kind = module.split(".")[1]  # initializers, regularizers, constraints, activations
        registry = {n: getattr(getattr(tf_keras, kind, None), n, None) for n in [value["class_name"]]}
        return _object(value, registry)
    if value.get("class_name") in DTYPE_POLICIES:
        return value["config"]["name"]
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key in ("module", "registered_name", "build_config", "compile_config"):
            continue
        if key == "inbound_nodes":
            nodes = []
            for node in item:
                refs: list[list[Any]] = []
                _node_refs(node.get("args", []) if isinstance(node, dict) else node, refs)
                nodes.append(refs)
            out[key] = nodes
        elif key == "config" and "class_name" in value:
            out[key] = _layer_config(value["class_name"], item)
        else:
            out[key] = translate(item)
    return out


def _layer_config(class_name: str, config: dict[str, Any]) -> dict[str, Any]:
    import tf_keras

    config = translate(config)
    if class_name == "InputLayer":
        config = dict(config)
        if "batch_shape" in config:
            config["batch_input_shape"] = config.pop("batch_shape")
        config.pop("optional", None)
    cls = getattr(tf_keras.layers, class_name, None)
    if cls is None or class_name in ("Sequential", "Functional", "Model"):
        return config
    accepted = (_accepted(cls) or set()) | LAYER_KWARGS
    return {k: v for k, v in config.items() if k in accepted}


def to_tf_keras(artifact: Artifact, out_path: Path) -> dict[str, Any]:
    """Rebuild the Keras 3 model at ``artifact.path`` with tf-keras; save it as .h5; return a report."""
    import tf_keras

    from compressor.frameworks._tf import KERAS3, load_keras, save_keras

    model = load_keras(Path(artifact.path), KERAS3)
    kind = type(model).__name__
    if kind not in ("Sequential", "Functional"):
        raise ConversionError(
            f"keras3 -> tf_keras: a {kind} (subclassed) model has no config to rebuild from; rebuild it "
            f"yourself with tf_keras, or use a Sequential / Functional model."
        )
    config = translate(model.get_config())
    unknown = [layer.__class__.__name__ for layer in model.layers
               if getattr(tf_keras.layers, layer.__class__.__name__, None) is None]
    if unknown:
        raise ConversionError(
            f"keras3 -> tf_keras: layer type {unknown[0]} has no tf-keras counterpart; replace it with built-in "
            f"layers, or save the model with tf_keras yourself."
        )
    try:
        rebuilt = (tf_keras.Sequential if kind == "Sequential" else tf_keras.Model).from_config(config)
        rebuilt.set_weights(model.get_weights())
    except Exception as exc:
        first = first_line(exc, 250)
        raise ConversionError(
            f"keras3 -> tf_keras: tf-keras cannot rebuild this model ({first}); save it with tf_keras "
            f"(import tf_keras; ...; model.save('model.h5')) and use that file as the input."
        ) from None
    save_keras(rebuilt, out_path)
    return {"layers": len(rebuilt.layers), "parameters": int(rebuilt.count_params())}
