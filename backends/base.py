"""The Runtime and Session protocol every backend implements."""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

if TYPE_CHECKING:
    from compressor.artifact import Artifact


def package_installed(name: str) -> bool:
    """Whether a top-level package can be imported, without importing it."""
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def repeat(run: Callable[[], object], warmup_runs: int, runs: int, max_seconds: float) -> tuple[int, int]:
    """Call ``run`` up to ``warmup_runs`` times, then up to ``runs`` times; each phase stops early (after at
    least 1 warm-up and 3 counted calls) once ``max_seconds`` have passed. Returns (warm-up calls, counted
    calls): a profile averages over the counted ones."""
    import time

    warm, start = 0, time.perf_counter()
    while warm < warmup_runs and (warm < 1 or time.perf_counter() - start < max_seconds):
        run()
        warm += 1
    done, start = 0, time.perf_counter()
    while done < runs and (done < 3 or time.perf_counter() - start < max_seconds):
        run()
        done += 1
    return warm, done


class Session:
    """An opened model. ``run`` takes named numpy arrays and returns the outputs as numpy arrays."""

    input_names: list[str]

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError

    def sync(self) -> None:
        """Wait for queued device work (GPU); a no-op on CPU."""

    def close(self) -> None:
        """Release the model."""

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Runtime:
    """A runtime that opens artifacts of some formats on some devices."""

    name: ClassVar[str]
    formats: ClassVar[tuple[str, ...]]
    devices: ClassVar[tuple[str, ...]] = ("cpu",)
    package: ClassVar[str]
    install_hint: ClassVar[str] = ""
    profiler: ClassVar[str | None] = None  # the runtime's own per-operator profiler, where this tool reads one

    def is_available(self) -> bool:
        """Whether the runtime's package is installed (looked up, not imported)."""
        return package_installed(self.package)

    def available_devices(self) -> list[str]:
        """Devices usable on this machine; may import the framework."""
        return ["cpu"] if self.is_available() else []

    def version(self) -> str | None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version(self.package)
        except PackageNotFoundError:
            return None

    def preload(self, artifact: Artifact) -> None:
        """Import what opening ``artifact`` needs, so a measurement's cold start does not count imports."""
        import importlib

        importlib.import_module(self.package)

    def can_run(self, fmt: str) -> bool:
        return str(fmt) in self.formats

    def open(self, artifact: Artifact, device: str = "cpu", threads: int = 1, **options: Any) -> Session:
        raise NotImplementedError

    def profile_ops(self, artifact: Artifact, device: str, threads: int, feeds: dict[str, np.ndarray],
                    warmup_runs: int, runs: int, max_seconds: float) -> tuple[list[dict[str, Any]], int]:
        """Each operator node's mean time per run from the runtime's own profiler, after ``warmup_runs``:
        (``[{"node", "op", "kind", "ms"}]``, runs averaged). ``kind`` is "qdq" (a Quantize/Dequantize
        conversion), "float_compute", "int8_compute" or "other"."""
        from compressor.errors import RuntimeUnavailableError

        raise RuntimeUnavailableError(f"{self.name} has no per-operator profiler here; profile its models on "
                                      f"onnxruntime or torch.")
