"""Width keyword arguments of model factories: how a narrower model is rebuilt without guessing.

A factory (a class or function named ``package.module:Name``) declares which of its keyword
arguments set a layer's output width, as a mapping ``WIDTH_KWARGS = {"c1": "conv1", "hidden": "fc1"}``
(kwarg -> the layer whose output channels / units it sets). Structured pruning uses it to record the
pruned widths as new kwargs; distillation's ``width: 0.5`` multiplies every declared kwarg (rounded,
at least 1). A factory that declares nothing is never scaled by guessing: structured pruning then
saves a .pt2 program, and distillation prunes a copy of the teacher instead.
"""
from __future__ import annotations

import inspect
from typing import Any

from compressor.errors import ConfigError


def declared_widths(factory: str) -> dict[str, str]:
    """The factory's ``WIDTH_KWARGS`` (kwarg -> layer name); empty when it declares none."""
    from compressor.code import load_attr

    declared = getattr(load_attr(factory), "WIDTH_KWARGS", None) or {}
    if not isinstance(declared, dict):
        raise ConfigError(f"factory '{factory}' has WIDTH_KWARGS = {declared!r}; it must map kwarg -> layer name.")
    return dict(declared)


def full_kwargs(factory: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` completed with the factory's defaults for its declared width kwargs."""
    from compressor.code import load_attr

    params = inspect.signature(load_attr(factory)).parameters
    out = dict(kwargs)
    for name in declared_widths(factory):
        if name not in out and name in params and params[name].default is not inspect.Parameter.empty:
            out[name] = params[name].default
    return out


def scaled_kwargs(factory: str, kwargs: dict[str, Any], width: float) -> dict[str, Any]:
    """The factory's kwargs with every declared width multiplied by ``width`` (at least 1)."""
    declared = declared_widths(factory)
    if not declared:
        raise ConfigError(
            f"distill.kd width: {width} needs the teacher factory '{factory}' to declare its width kwargs "
            f"(WIDTH_KWARGS = {{'kwarg': 'layer'}}); it declares none. Give 'student' (and 'student_kwargs') instead."
        )
    out = full_kwargs(factory, kwargs)
    for name in declared:
        if not isinstance(out.get(name), int):
            raise ConfigError(f"factory '{factory}' width kwarg '{name}' has no integer value to scale; pass it in kwargs.")
        out[name] = max(1, int(round(out[name] * width)))
    return out


def pruned_kwargs(factory: str, kwargs: dict[str, Any], widths: dict[str, int]) -> dict[str, Any] | None:
    """The factory's kwargs with the new width of every declared layer in ``widths``; None when the factory
    declares no kwarg for any of them (then the pruned model cannot be rebuilt from the factory).

    Layers that shrink together with a declared one (its BatchNorm, the other inputs of a residual add)
    need no kwarg of their own; whether the kwargs rebuild every pruned shape is for the caller to
    check by loading the pruned weights strictly into the rebuilt model.
    """
    by_layer = {layer: kw for kw, layer in declared_widths(factory).items()}
    if not any(layer in by_layer for layer in widths):
        return None
    out = full_kwargs(factory, kwargs)
    for layer, width in widths.items():
        if layer in by_layer:
            out[by_layer[layer]] = width
    return out
