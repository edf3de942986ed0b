"""PyTorch -> TFLite with litert-torch (fp32, or int8 through PT2E quantization), and .tflite import.

litert-torch exports a fixed batch (the sample's); the LiteRT session runs larger batches in
chunks of it. Static int8 (PT2E, per-channel symmetric weights, calibrated activations) gives
int8 kernels and int8 model inputs / outputs; the session quantizes and dequantizes them.
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compressor.artifact import Artifact
from compressor.errors import ConversionError

if TYPE_CHECKING:
    from compressor.passes.base import PassContext
    from compressor.passes.convert.to_tflite import ConvertTfliteConfig

log = logging.getLogger(__name__)

PREPARE_ATTEMPTS = 8
CALIBRATION_BATCH = 32


def _calibration(artifact: Artifact, ctx: Any, limit: int) -> list[tuple[Any, ...]]:
    """Calibration batches (of CALIBRATION_BATCH samples) as the torch model takes them."""
    import torch

    from compressor.data import feeds_for

    split = ctx.data.split("calibration", needed_by="convert.tflite int8").take(limit)
    feeds = feeds_for(artifact.signature, split.inputs)
    names = artifact.signature.input_names
    return [tuple(torch.from_numpy(feeds[n][i:i + CALIBRATION_BATCH]) for n in names)
            for i in range(0, len(split), CALIBRATION_BATCH)]


def _export_for_calibration(module: Any, sample: tuple[Any, ...]) -> tuple[Any, bool]:
    """torch.export with a symbolic batch, so calibration runs in batches; batch 1 if the model is not batch-polymorphic."""
    import torch

    batch = torch.export.Dim("batch", min=1, max=65536)
    wide = tuple(torch.cat([a, a]) for a in sample)
    try:
        return torch.export.export(module, wide, dynamic_shapes=tuple({0: batch} for _ in wide)), True
    except Exception as exc:  # data-dependent shapes, reshapes to a fixed batch...
        log.debug("dynamic-batch export failed (%s); calibrating one sample at a time", exc)
        return torch.export.export(module, sample), False


def _pt2e(module: Any, sample: tuple[Any, ...], calib: list[tuple[Any, ...]], dynamic: bool) -> tuple[Any, Any]:
    """Quantize with PT2E (litert-torch's quantizer): symmetric per-channel int8 weights."""
    import torch
    from litert_torch.quantize.pt2e_quantizer import (
        PT2EQuantizer,
        get_symmetric_quantization_config,
    )
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    quantizer = PT2EQuantizer().set_global(
        get_symmetric_quantization_config(is_per_channel=True, is_dynamic=dynamic))
    for attempt in range(PREPARE_ATTEMPTS):
        try:
            program, batched = _export_for_calibration(module, sample)
            graph = prepare_pt2e(program.module(), quantizer)
            break
        except (AssertionError, KeyError, ValueError) as exc:
            # torchao's observer sharing (MaxPool shares its input's observer) depends on the
            # iteration order of node sets and fails on some tries with "only refer to edge or node
            # that has observer/fake_quant inserted"; a fresh export usually succeeds.
            if "observer/fake_quant inserted" not in str(exc) or attempt == PREPARE_ATTEMPTS - 1:
                raise
            log.debug("prepare_pt2e attempt %d failed (%s); retrying", attempt + 1, exc)
    with torch.no_grad():
        for args in calib if not dynamic else calib[:1]:
            if batched:
                graph(*args)
            else:
                for i in range(len(args[0])):
                    graph(*(a[i:i + 1] for a in args))
    return convert_pt2e(graph, fold_quantize=False), QuantConfig(pt2e_quantizer=quantizer)


def export_tflite(artifact: Artifact, config: ConvertTfliteConfig, path: Path, ctx: PassContext) -> None:
    """Convert a torch model folder to .tflite at ``path`` (batch fixed at 1)."""
    os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")
    import torch

    from compressor.frameworks._torch import load_module, sample_inputs
    from compressor.passes.convert._tf import quiet_converter

    module = load_module(Path(artifact.path))
    sample = sample_inputs(artifact.signature, batch=1)
    calib = _calibration(artifact, ctx, config.calibration_samples) if config.quantize in ("int8", "dynamic") else []
    try:
        with quiet_converter(), _quiet_logs():
            import litert_torch  # its import prints TensorFlow's C++ banner and torchao's notices to fd 2

            if config.quantize == "none" and len(sample) > 1:  # keyword inputs: the file keeps the input names
                names = artifact.signature.input_names
                edge = litert_torch.convert(module, sample_args=(), sample_kwargs=dict(zip(names, sample)))
            elif config.quantize == "none":
                edge = litert_torch.convert(module, sample)
            else:
                graph, quant_config = _pt2e(module, sample, calib, dynamic=config.quantize == "dynamic")
                edge = litert_torch.convert(graph, sample, quant_config=quant_config)
            edge.export(str(path))
    except Exception as exc:
        raise _conversion_error(config, exc) from None
    finally:
        torch.set_grad_enabled(True)


class _quiet_logs:
    """litert-torch warns through the root logger ("converted in training mode"); keep it at debug."""

    def __enter__(self) -> None:
        self._level = logging.getLogger().level
        logging.getLogger().setLevel(logging.ERROR)

    def __exit__(self, *exc: Any) -> None:
        logging.getLogger().setLevel(self._level)


def _conversion_error(config: ConvertTfliteConfig, exc: BaseException) -> ConversionError:
    text = str(exc)
    hop = f"torch -> tflite (litert-torch, quantize: {config.quantize})"
    match = re.search(r"(aten\.[\w.]+)", text)
    if match:
        return ConversionError(
            f"{hop} failed: operator {match.group(1)} has no LiteRT lowering. Replace it in the model with "
            f"supported ops, or take the ONNX route (convert.onnx) and run it on onnxruntime."
        )
    first = text.strip().splitlines()[0][:300] if text.strip() else type(exc).__name__
    return ConversionError(f"{hop} failed: {first}. Try quantize: none, or convert.onnx instead.")
