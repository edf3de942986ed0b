"""The environment fingerprint recorded with every benchmark: CPU, ISA flags, load, versions."""
from __future__ import annotations

import os
import platform
from importlib.metadata import PackageNotFoundError, version
from typing import Any

PACKAGES = ("numpy", "onnx", "onnxruntime", "torch", "tensorflow", "tf-keras", "ai-edge-litert",
            "tf2onnx", "tensorflow-model-optimization", "litert-torch", "neural-compressor-pt")
ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
             "avx_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_int8", "amx_bf16", "asimd", "asimddp", "i8mm")


def cpu_info() -> dict[str, Any]:
    """CPU model name and the ISA flags that matter for int8 / fp16 kernels."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and model in ("", platform.machine(), platform.processor()):
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return {"model": model, "isa": [f for f in ISA_FLAGS if f in flags],
            "int8_dot_product": bool(flags & {"avx512_vnni", "avx_vnni", "asimddp", "amx_int8"}),
            "fp16_arithmetic": bool(flags & {"avx512_fp16", "asimdhp", "amx_fp16"})}


def package_versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def fingerprint() -> dict[str, Any]:
    """Everything a reader needs to judge a latency figure."""
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = []
    return {
        "cpu": cpu_info(),
        "cores": os.cpu_count(),
        "load_average": load,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": package_versions(),
    }


def machine_fingerprint() -> dict[str, Any]:
    """What a latency figure depends on and that stays put between runs: CPU, ISA flags, cores, versions.

    The load average is left out on purpose: it is recorded with each run, not part of the machine.
    """
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count()
    return {"cpu": cpu_info(), "cores": os.cpu_count(), "usable_cores": usable, "machine": platform.machine(),
            "python": platform.python_version(), "packages": package_versions()}
