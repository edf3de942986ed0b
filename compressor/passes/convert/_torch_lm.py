"""PyTorch causal LM -> ONNX with a key/value cache (the LM side of convert.onnx).

The module's flat cache form (``compressor.frameworks._torch_lm``) is exported with torch.export:
batch, new tokens and past length are symbolic, so one graph serves prefill (past length 0) and
every decode step. Inputs and outputs carry onnxruntime-genai's names.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compressor.artifact import BATCH, PAST, SEQUENCE, Signature
from compressor.errors import ConversionError, first_line
from compressor.frameworks._onnx import onnx_signature
from compressor.frameworks._torch import quiet_stdout
from compressor.frameworks._torch_lm import (
    TOTAL,
    cache_input_names,
    cache_output_names,
    empty_cache,
    flat_cache_module,
)

if TYPE_CHECKING:
    from compressor.passes.convert.to_onnx import ConvertOnnxConfig

EXAMPLE = {"batch": 2, "sequence": 5, "past": 3}  # sizes that specialise nothing (not 0 or 1)


def export_causal_lm(module: Any, config: ConvertOnnxConfig, path: Path) -> Signature:
    """Export ``module`` (a causal LM declaring the cache trait) to ``path``; return the ONNX signature."""
    import torch

    layers = module.kv_cache_layout()[0]
    flat = flat_cache_module(module)
    vocab = int(module(torch.zeros(1, 1, dtype=torch.long), torch.ones(1, 1, dtype=torch.long)).shape[-1])
    ids = torch.randint(0, vocab, (EXAMPLE["batch"], EXAMPLE["sequence"]), generator=torch.Generator().manual_seed(0))
    past = empty_cache(module, EXAMPLE["batch"], EXAMPLE["past"], seed=0)
    mask = torch.ones(EXAMPLE["batch"], EXAMPLE["past"] + EXAMPLE["sequence"], dtype=torch.long)
    dim = torch.export.Dim
    batch, seq, past_len = dim(BATCH, min=1, max=4096), dim(SEQUENCE, min=1, max=8192), dim(PAST, min=0, max=8192)
    shapes = ({0: batch, 1: seq}, {0: batch, 1: dim.AUTO}, tuple({0: batch, 2: past_len} for _ in past))
    in_names = ["input_ids", "attention_mask", *cache_input_names(layers)]
    out_names = ["logits", *cache_output_names(layers)]
    try:
        with warnings.catch_warnings(), quiet_stdout():
            warnings.simplefilter("ignore")
            torch.onnx.export(flat, (ids, mask, *past), str(path), input_names=in_names, output_names=out_names,
                              dynamo=True, external_data=False, dynamic_shapes=shapes, opset_version=config.opset)
    except Exception as exc:
        raise ConversionError(
            f"torch -> onnx export of the causal LM with its key/value cache failed (opset {config.opset}): "
            f"{first_line(exc, 300)}; set convert.onnx kv_cache: false to export the plain forward."
        ) from None
    _name_cache_dims(path, layers)
    return onnx_signature(path)


def _name_cache_dims(path: Path, layers: int) -> None:
    """Readable dim names: the mask and presents span ``total_sequence`` (past + new tokens)."""
    import onnx

    model = onnx.load(str(path))
    mask = next(v for v in model.graph.input if v.name == "attention_mask")
    rename = {mask.type.tensor_type.shape.dim[1].dim_param: TOTAL}
    presents = set(cache_output_names(layers))
    for value in model.graph.output:
        if value.name in presents:
            dim = value.type.tensor_type.shape.dim[2]
            if dim.dim_param:
                rename.setdefault(dim.dim_param, TOTAL)
                dim.dim_param = TOTAL
    for value in [*model.graph.input, *model.graph.value_info]:
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param in rename:
                dim.dim_param = rename[dim.dim_param]
    onnx.save(model, str(path))
