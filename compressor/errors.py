"""The error family every user-facing failure belongs to.

Each message is one line: what failed, the offending value, what is allowed, and what to do.
The CLI prints it and exits with status 2. Subclasses also derive from the matching builtin
(``ValueError``, ``FileNotFoundError``) so ordinary ``except`` clauses keep working.
"""
from __future__ import annotations

import difflib
import re
from collections.abc import Iterable


class CompressorError(Exception):
    """Base of every error the toolchain raises for bad input or a failed step."""


class ConfigError(CompressorError, ValueError):
    """A pipeline file or pass config is invalid."""


class UnknownNameError(ConfigError, KeyError):
    """A pass, runtime, metric or data source name is not known."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class FormatChainError(ConfigError):
    """A pass receives a model format it cannot take."""


class ModelLoadError(CompressorError):
    """A model file is missing, corrupt, or not the format it claims to be."""


class UntrustedCodeError(ModelLoadError):
    """A model file names code to import or call, and the user has not said to trust it (--trust-code)."""


class DataError(CompressorError, ValueError):
    """A data source or split is missing, empty, or of the wrong shape or dtype."""


class ConversionError(CompressorError):
    """A conversion between frameworks failed (an operator the converter cannot handle...)."""


class PassError(CompressorError):
    """A pass failed while running, or refused its input in ``check``."""


class InputRefused(PassError):
    """A pass refused its input or config in ``check``, before any work: bad input (CLI exit 2)."""


class VerificationError(PassError):
    """A pass produced a result that fails its parity check."""


class RuntimeUnavailableError(CompressorError):
    """A runtime or device is not installed or not present on this machine."""


class MeasurementError(CompressorError):
    """A measurement failed: its subprocess timed out, crashed or printed no result."""


class RunFolderInUse(CompressorError):
    """Another compressor run holds the lock of the run folder."""


# "[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : ", "ValueError: ", "onnxruntime.capi.x.InvalidArgument: "
_LIBRARY_PREFIX = re.compile(r"^\[ONNXRuntimeError\] : \d+ : \w+ : |^(?:\w+\.)*\w+(?:Error|Exception): "
                             r"|^(?:[a-z_]\w*\.)+[A-Z]\w*: ")


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first useful line of an exception's message, cut to ``limit``, without a final period.

    Library errors often carry pages of text; a CompressorError quotes one line of it. Blank lines,
    traceback lines and library prefixes (``[ONNXRuntimeError] : 1 : FAIL :``, ``ValueError:``) are
    skipped, and the line's own final period is dropped so the quoting sentence can end it. A
    message-less exception gives a description of its kind, not a bare class name.
    """
    useful = []
    for line in str(exc).splitlines():
        line = line.strip()
        while (shorter := _LIBRARY_PREFIX.sub("", line, count=1)) != line:
            line = shorter
        if line and not line.startswith(("Traceback", "File \"", "During handling")):
            useful.append(line)
            if not line.endswith(":"):  # a line announcing a list ("Error(s) in loading ...:") takes the next
                break
    text = " ".join(useful).rstrip(" .:")[:limit]
    if text:
        return text
    return f"{type(exc).__name__} with no message"


def did_you_mean(value: str, choices: Iterable[str]) -> str:
    """Return ' Did you mean 'x'?' for the closest choice, or '' when nothing is close."""
    close = difflib.get_close_matches(value, list(choices), n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""


def unknown_name(kind: str, value: str, choices: Iterable[str], fix: str = "") -> UnknownNameError:
    """Build the standard error for an unknown name, listing what is allowed."""
    known = sorted(choices)
    message = f"unknown {kind} '{value}'.{did_you_mean(value, known)} Known: {', '.join(known)}."
    if fix:
        message += f" {fix}"
    return UnknownNameError(message)
