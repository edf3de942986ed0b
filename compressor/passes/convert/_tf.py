"""TensorFlow side of the conversions: import Keras / SavedModel, and convert to ONNX (tf2onnx) and TFLite.

Keras models of either generation are converted through a concrete ``tf.function`` whose
variables are tracked by a ``tf.Module`` (so the TFLite converter freezes them); SavedModels go
through their ``serving_default`` signature.
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from compressor.artifact import Artifact, Signature
from compressor.errors import ConversionError, DataError, first_line
from compressor.frameworks._tf import keras_module

if TYPE_CHECKING:
    from compressor.passes.base import PassContext
    from compressor.passes.convert.to_onnx import ConvertOnnxConfig
    from compressor.passes.convert.to_tflite import ConvertTfliteConfig

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- importers


# ---------------------------------------------------------------- a traceable function

@contextlib.contextmanager
def quiet_converter() -> Iterator[None]:
    """The converters print from Python and from C++ (straight to file descriptors 1 and 2); keep it in the debug log."""
    import sys
    import tempfile

    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile(mode="w+b") as sink, warnings.catch_warnings(), \
            contextlib.redirect_stdout(io.StringIO()) as captured:
        warnings.simplefilter("ignore")
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            sink.seek(0)
            output = captured.getvalue() + sink.read()[-4000:].decode(errors="replace")
            if output.strip():  # the run's log file keeps it (the CLI's --verbose shows it)
                log.info("converter output: %s", output.strip())


def _unsupported_op(text: str) -> str | None:
    """The TF operator a converter named as unsupported, if its message names one."""
    for pattern in (r"'tf\.(\w+)' op is neither a custom op nor a flex op", r"ops are not supported.*?tf\.(\w+)",
                    r"[Uu]nsupported ops?:?\s*\[?'?(?:tf\.)?(\w+)", r"No conversion handler registered for op (\w+)"):
        match = re.search(pattern, text, re.S)
        if match:
            return match.group(1)
    return None


# ---------------------------------------------------------------- ONNX (tf2onnx)

def export_onnx(artifact: Artifact, config: ConvertOnnxConfig, path: Path) -> Signature:
    """Convert a Keras model or SavedModel to ONNX with tf2onnx; return the ONNX signature."""
    import tensorflow as tf
    import tf2onnx

    from compressor.frameworks._onnx import onnx_signature

    sig = artifact.signature

    def dims(shape: tuple) -> list[int | None]:
        batch = None if config.dynamic_batch else 1
        return [batch if i == 0 else (d if isinstance(d, int) else None) for i, d in enumerate(shape)]

    specs = [tf.TensorSpec(dims(s.shape), s.dtype, name=s.name) for s in sig.inputs]
    fn = _serving_function(artifact)
    hop = f"{artifact.format.value} -> onnx (tf2onnx, opset {config.opset})"
    errors = _LogCollector()
    tf2onnx_log = logging.getLogger("tf2onnx")
    tf2onnx_log.addHandler(errors)
    try:
        with quiet_converter():
            tf2onnx.convert.from_function(fn, input_signature=specs, opset=config.opset, output_path=str(path))
    except Exception as exc:
        op = _unsupported_op(str(exc))
        what = f"operator {op} is not supported by tf2onnx" if op else first_line(exc)
        raise ConversionError(
            f"{hop} failed: {what}. Try another opset, replace the operator with a supported one, "
            f"or convert to TFLite instead."
        ) from None
    finally:
        tf2onnx_log.removeHandler(errors)
    # tf2onnx logs unsupported ops and still writes a graph that keeps them as TF nodes
    unsupported = [m for m in errors.messages if m.startswith("Unsupported ops")]
    if unsupported:
        path.unlink(missing_ok=True)
        ops = ", ".join(re.findall(r"'(\w+)'", unsupported[0])) or unsupported[0]
        raise ConversionError(
            f"{hop} failed: operator {ops} has no ONNX conversion in tf2onnx. Replace it with supported ops, "
            f"try another opset, or convert to TFLite (convert.tflite) instead."
        )
    return onnx_signature(path, sig.layout)


class _LogCollector(logging.Handler):
    """Keeps the error messages a library logs while it runs."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _serving_function(artifact: Artifact) -> Any:
    """A tf.function taking the inputs positionally and returning a list of outputs in signature order."""
    import tensorflow as tf

    if artifact.format.value == "saved_model":
        from compressor.frameworks._tf import load_saved_model

        loaded, fn = load_saved_model(Path(artifact.path))
        names = artifact.signature.input_names
        out_names = [o.name for o in artifact.signature.outputs]

        def call(*xs: Any) -> Any:
            out = fn(**dict(zip(names, xs)))
            return [out[n] for n in out_names]

        call.__keep = loaded  # type: ignore[attr-defined]  # the variables live on the loaded object
        return tf.function(call)
    module = keras_module(artifact)
    serve = module.serve
    return tf.function(lambda *xs: serve(*xs))


# ---------------------------------------------------------------- TFLite

def representative_samples(artifact: Artifact, ctx: Any, limit: int) -> list[list[np.ndarray]]:
    """Calibration samples fed one at a time, as the model's inputs expect them (layout, dtype, shape)."""
    from compressor.data import feeds_for

    split = ctx.data.split("calibration", needed_by="convert.tflite int8").take(limit)
    for name, arr in split.inputs.items():
        if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
            raise DataError(
                f"representative dataset array '{name}' has dtype {arr.dtype}; int8 calibration needs numeric "
                f"arrays (float32 images in [0, 1] for this model); fix the calibration data."
            )
    feeds = feeds_for(artifact.signature, split.inputs)  # raises DataError on a shape mismatch
    for spec in artifact.signature.inputs:
        if spec.dtype.startswith("float") and not np.all(np.isfinite(feeds[spec.name])):
            raise DataError(f"representative dataset for input '{spec.name}' has NaN or inf values; clean the calibration data.")
    names = artifact.signature.input_names
    return [[feeds[n][i:i + 1] for n in names] for i in range(len(split))]


def _configure(converter: Any, config: ConvertTfliteConfig, samples: list[list[np.ndarray]] | None) -> None:
    """Apply quantize: none | fp16 | dynamic | int8 (full integer, optional int8 I/O)."""
    import tensorflow as tf

    if config.quantize == "none":
        return
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if config.quantize == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    elif config.quantize == "int8":
        converter.representative_dataset = lambda: iter(samples or [])
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if config.int8_io:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8


def export_tflite(artifact: Artifact, config: ConvertTfliteConfig, path: Path, ctx: PassContext) -> None:
    """Convert a Keras model or SavedModel to a .tflite file at ``path``."""
    import tensorflow as tf

    samples = representative_samples(artifact, ctx, config.calibration_samples) if config.quantize == "int8" else None
    if artifact.format.value == "saved_model":
        converter = tf.lite.TFLiteConverter.from_saved_model(str(artifact.path), signature_keys=["serving_default"])
        keep = None
    else:
        keep = keras_module(artifact)
        converter = tf.lite.TFLiteConverter.from_concrete_functions([keep.serve.get_concrete_function()], keep)
    _configure(converter, config, samples)
    try:
        with quiet_converter():
            flatbuffer = converter.convert()
    except Exception as exc:
        raise _tflite_error(artifact, config, exc) from None
    path.write_bytes(flatbuffer)
    del keep


def _tflite_error(artifact: Artifact, config: ConvertTfliteConfig, exc: BaseException) -> ConversionError:
    text = str(exc)
    op = _unsupported_op(text)
    hop = f"{artifact.format.value} -> tflite (quantize: {config.quantize})"
    if op and config.quantize == "int8":
        return ConversionError(
            f"{hop} failed: operator {op} has no int8 TFLite kernel. Try quantize: dynamic, or replace {op} "
            f"with a supported layer, or exclude it from the model."
        )
    if op:
        return ConversionError(
            f"{hop} failed: operator {op} is not a TFLite builtin. Replace it with a supported layer, or "
            f"convert to ONNX (convert.onnx) instead."
        )
    return ConversionError(f"{hop} failed: {first_line(exc)}. Try another quantize mode or convert.onnx.")


def calibration_check(artifact: Artifact, ctx: Any, limit: int) -> None:
    """Refuse early a calibration split that cannot feed the model (shape, dtype, values)."""
    representative_samples(artifact, ctx, min(limit, 2))
