"""PyTorch -> ONNX export (the torch side of convert.onnx)."""
from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compressor.artifact import BATCH, Artifact, Signature
from compressor.errors import ConversionError, first_line
from compressor.frameworks._onnx import onnx_signature
from compressor.frameworks._torch import load_torch, quiet_stdout, sample_inputs
from compressor.frameworks._torch_lm import is_causal_lm

if TYPE_CHECKING:
    from compressor.passes.convert.to_onnx import ConvertOnnxConfig

log = logging.getLogger(__name__)


def export_onnx(artifact: Artifact, config: ConvertOnnxConfig, path: Path) -> Signature:
    """Export a torch model folder to ONNX at ``path``; return the ONNX model's signature."""
    import torch

    module = load_torch(artifact)
    if getattr(config, "kv_cache", None) is not False and is_causal_lm(module):
        from compressor.passes.convert._torch_lm import export_causal_lm

        return export_causal_lm(module, config, path)
    if getattr(config, "kv_cache", None) and not is_causal_lm(module):
        raise ConversionError(
            f"convert.onnx: kv_cache is true but {type(module).__name__} does not declare the causal-LM trait "
            f"(kv_cache_layout and forward_with_cache methods); drop kv_cache or add the methods to the model."
        )
    args = sample_inputs(artifact.signature)
    in_names = artifact.signature.input_names
    out_names = [o.name for o in artifact.signature.outputs] or ["output"]
    kwargs: dict[str, Any] = {"dynamo": config.exporter == "dynamo"}
    extra_axes = {n: {int(a): d for a, d in axes.items()} for n, axes in getattr(config, "dynamic_axes", {}).items()}
    if config.exporter == "dynamo":
        kwargs["external_data"] = False
        if config.dynamic_batch or extra_axes:
            batch = torch.export.Dim("batch", min=1, max=65536)
            # AUTO: the exporter finds each extra dim's range itself (BERT caps the sequence at 512);
            # the ONNX dim names are set from dynamic_axes after export
            kwargs["dynamic_shapes"] = tuple(
                {**({0: batch} if config.dynamic_batch else {}), **{a: torch.export.Dim.AUTO for a in extra_axes.get(n, {})}}
                for n in in_names)
    elif config.dynamic_batch or extra_axes:
        kwargs["dynamic_axes"] = {n: {**({0: BATCH} if config.dynamic_batch else {}), **extra_axes.get(n, {})}
                                  for n in in_names + out_names}
    try:
        with warnings.catch_warnings(), quiet_stdout():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module, args, str(path), input_names=in_names, output_names=out_names,
                opset_version=config.opset, **kwargs,
            )
    except Exception as exc:
        detail = first_line(exc, 300)
        raise ConversionError(
            f"torch -> onnx export failed ({config.exporter} exporter, opset {config.opset}): {detail}. "
            f"Try exporter: {'torchscript' if config.exporter == 'dynamo' else 'dynamo'} or another opset."
        ) from None
    if extra_axes:
        name_dims(path, extra_axes)
    return onnx_signature(path, artifact.signature.layout)


def name_dims(path: Path, axes: dict[str, dict[int, str]]) -> None:
    """Give the exported graph's symbolic input dims the names asked for (s0, s1... -> sequence)."""
    import onnx

    model = onnx.load(str(path))
    rename: dict[str, str] = {}
    for value in model.graph.input:
        for axis, wanted in axes.get(value.name, {}).items():
            dim = value.type.tensor_type.shape.dim[axis]
            if not dim.dim_param:
                raise ConversionError(
                    f"convert.onnx: axis {axis} of input '{value.name}' came out fixed ({dim.dim_value}) although "
                    f"dynamic_axes asks for '{wanted}'; the model specializes on that size."
                )
            rename[dim.dim_param] = wanted
    for value in [*model.graph.input, *model.graph.output, *model.graph.value_info]:
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param in rename:
                dim.dim_param = rename[dim.dim_param]
    onnx.save(model, str(path))


