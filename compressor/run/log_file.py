"""The run's log file (``OUT/run.log``) and a quiet terminal while a run works.

Inside ``run_log`` every log record at INFO and above goes to ``run.log`` in the run folder (appended,
never truncated), and so does what third-party libraries say: their loggers, Python warnings
(``logging.captureWarnings``) and what they write to ``sys.stderr``. The terminal shows the project's
own warnings only, unless ``verbose``: then it shows every INFO record and all third-party output
as well. C++ banners written straight to file descriptor 2 are turned down at their source
(TensorFlow's ``TF_CPP_MIN_LOG_LEVEL``, ONNX Runtime's default logger) where one exists.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from compressor.errors import CompressorError

LOG_NAME = "run.log"
OWN_PACKAGES = ("compressor", "backends", "samples", "benchmarks")
FILE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
TERMINAL_FORMAT = "%(levelname)s %(name)s: %(message)s"


class OwnWarnings(logging.Filter):
    """Passes the project's own warnings and errors; third-party records stay in the file."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING and record.name.split(".")[0] in OWN_PACKAGES


@contextlib.contextmanager
def run_log(out_dir: Path, verbose: bool = False) -> Iterator[Path]:
    """Log the run into ``out_dir/run.log``; quiet the terminal unless ``verbose``.

    Everything is restored on exit. A run refused as bad input (a CompressorError) leaves no log
    file behind when it created one, so a refusal still writes nothing.
    """
    path = Path(out_dir) / LOG_NAME
    created = not path.exists()
    stream = open(path, "a", buffering=1, encoding="utf-8", errors="replace")  # noqa: SIM115 (closed below)
    refused = False
    try:
        with _root_handlers(stream, verbose), contextlib.ExitStack() as stack:
            if not verbose:
                stack.enter_context(_native_quiet())
                stack.enter_context(_third_party_streams(stream))
                stack.enter_context(contextlib.redirect_stderr(stream))
            yield path
    except CompressorError:
        refused = True
        raise
    finally:
        stream.close()
        if refused and created:
            path.unlink(missing_ok=True)


@contextlib.contextmanager
def _root_handlers(stream: IO[str], verbose: bool) -> Iterator[None]:
    root = logging.getLogger()
    saved_level, saved_handlers = root.level, list(root.handlers)
    terminal = logging.StreamHandler(sys.stderr)
    terminal.setFormatter(logging.Formatter(TERMINAL_FORMAT))
    if not verbose:
        terminal.addFilter(OwnWarnings())
    to_file = logging.StreamHandler(stream)
    to_file.setFormatter(logging.Formatter(FILE_FORMAT))
    root.handlers = [terminal, to_file]
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)
    try:
        yield
    finally:
        logging.captureWarnings(False)
        root.handlers = saved_handlers
        root.setLevel(saved_level)


@contextlib.contextmanager
def _third_party_streams(stream: IO[str]) -> Iterator[None]:
    """Loggers that print through their own handler (torch's, neural-compressor's) and were set up
    before the run write to the file too; those set up during the run pick up the redirected stderr."""
    moved = []
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if not isinstance(logger, logging.Logger) or name.split(".")[0] in OWN_PACKAGES:
            continue
        for handler in logger.handlers:
            if type(handler) is logging.StreamHandler and handler.stream in (sys.stderr, sys.__stderr__):
                moved.append((handler, handler.setStream(stream)))
    try:
        yield
    finally:
        for handler, old in moved:
            handler.setStream(old)


@contextlib.contextmanager
def _native_quiet() -> Iterator[None]:
    """C++ log lines that bypass Python: TensorFlow's info and warning lines, ONNX Runtime's warnings."""
    from compressor.frameworks._onnx import set_onnxruntime_log_severity

    saved = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    set_onnxruntime_log_severity(3)  # errors only
    try:
        yield
    finally:
        set_onnxruntime_log_severity(2)  # ORT's default: warnings
        if saved is None:
            os.environ.pop("TF_CPP_MIN_LOG_LEVEL", None)
