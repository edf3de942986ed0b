"""Code named by a string: the one place the tool imports a 'module:attr' it was given."""
from __future__ import annotations

import importlib
from typing import Any

from compressor.errors import ConfigError, did_you_mean


def load_attr(spec: str) -> Any:
    """Import ``"pkg.module:attr"`` and return the attribute."""
    module_name, _, attr = spec.partition(":")
    if not attr:
        raise ConfigError(f"'{spec}' is not of the form 'package.module:name'; write it so.")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"cannot import module '{module_name}' for '{spec}': {exc}. Check the dotted path "
            f"and that the package is installed."
        ) from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        names = [n for n in dir(module) if not n.startswith("_")]
        raise ConfigError(
            f"module '{module_name}' has no '{attr}'.{did_you_mean(attr, names)}"
        ) from None
