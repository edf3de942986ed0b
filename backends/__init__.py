"""Runtimes that load an artifact and run it.

The registry maps runtime names to "module:attr" strings; listing runtimes or asking whether one
is installed imports no framework (``importlib.util.find_spec`` only).
"""
from __future__ import annotations

import importlib
import importlib.util
import re
from dataclasses import dataclass

from backends.base import Runtime, Session, package_installed
from compressor.errors import ConfigError, RuntimeUnavailableError, unknown_name

__all__ = ["Runtime", "Session", "package_installed", "RUNTIMES", "get_runtime", "parse_target", "Target", "default_runtime"]

RESOURCE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")
RUNTIMES: dict[str, str] = {
    "onnxruntime": "backends._onnx:OnnxRuntime",
    "torch": "backends._torch:TorchRuntime",
    "litert": "backends._litert:LiteRtRuntime",
    "tensorflow": "backends._tf:TensorflowRuntime",
}

@dataclass(frozen=True)
class Target:
    """A runtime on a device, as written in a pipeline: ``onnxruntime:cpu``, ``torch:cuda``, and
    optionally the Ray custom resource a node must advertise to measure it: ``onnxruntime:cpu@node:arm64-board``."""

    runtime: str
    device: str = "cpu"
    resource: str | None = None

    def __str__(self) -> str:
        where = f"@node:{self.resource}" if self.resource else ""
        return f"{self.runtime}:{self.device}{where}"


def get_runtime(name: str) -> Runtime:
    """The runtime registered under ``name`` (imports only its light module)."""
    if name not in RUNTIMES:
        raise unknown_name("runtime", name, RUNTIMES, "Run 'compressor runtimes' to list them.")
    module_name, _, attr = RUNTIMES[name].partition(":")
    return getattr(importlib.import_module(module_name), attr)()


def parse_target(text: str) -> Target:
    """Parse ``runtime:device[@node:RESOURCE]``; the device defaults to cpu. Unknown names are errors."""
    text, at, where = text.partition("@")
    resource = None
    if at:
        kind, _, resource = where.partition(":")
        if kind != "node" or not RESOURCE_NAME.fullmatch(resource):
            raise ConfigError(f"target '{text}@{where}': after '@' write 'node:RESOURCE', a Ray custom resource "
                              f"of letters, digits, '.', '_', '-' (e.g. 'onnxruntime:cpu@node:arm64-board').")
    runtime, _, device = text.partition(":")
    device = device or "cpu"
    rt = get_runtime(runtime)
    if device not in rt.devices:
        raise ConfigError(
            f"target '{text}': runtime '{runtime}' has no device '{device}'; allowed: "
            f"{', '.join(rt.devices)}."
        )
    return Target(runtime, device, resource)


def default_runtime(fmt: str) -> Runtime:
    """The runtime used to evaluate and check a format."""
    from compressor.formats import Format
    from compressor.frameworks import FORMATS

    info = FORMATS.get(Format(str(fmt))) if str(fmt) in {f.value for f in Format} else None
    name = info.runtime if info else None
    if name is None:
        raise RuntimeUnavailableError(f"no runtime can run format '{fmt}' in this installation.")
    runtime = get_runtime(name)
    if not runtime.is_available():
        raise RuntimeUnavailableError(
            f"runtime '{name}' (needed for '{fmt}' models) is not installed; {runtime.install_hint}."
        )
    return runtime
