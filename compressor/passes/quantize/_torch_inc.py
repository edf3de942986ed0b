"""neural-compressor (INC 3.x, neural-compressor-pt) weight-only quantization: the torch side of
quantize.torch.weight_only.

INC replaces each quantized ``nn.Linear`` by an ``INCWeightOnlyLinear`` holding packed int weights,
scales and zero points; on CPU its forward unpacks them to a float weight (``recover()``) and calls
``F.linear``: there is no int4 / int8 kernel. AWQ also wraps some layers in ``MulLinear`` (an input
scale in front of the quantized Linear). This module folds both back into the model's own
``nn.Linear`` layers, so the result is the original architecture with float weights that lie on the
quantization grid, exactly what INC computes on CPU, loadable by the factory with no INC code.
"""
from __future__ import annotations

import contextlib
import json
import logging
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compressor.artifact import Artifact
from compressor.errors import PassError

if TYPE_CHECKING:
    from compressor.artifact import Signature
    from compressor.data import Split
    from compressor.passes.base import PassContext
    from compressor.passes.quantize.torch_weight_only import TorchWeightOnlyConfig


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """INC logs every step at INFO/WARNING through its own handler; keep errors only while it works."""
    inc_log = logging.getLogger("neural_compressor")
    level = inc_log.level
    inc_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        inc_log.setLevel(level)


def count_linear(module: Any) -> int:
    import torch

    return sum(isinstance(m, torch.nn.Linear) for m in module.modules())


def has_blocks(module: Any) -> bool:
    """Whether the model keeps repeated blocks in an nn.ModuleList / nn.Sequential, as GPTQ and AWQ expect.

    INC's GPTQ and AWQ walk an LLM's stack of transformer blocks (``model.layers[i]``) one block at a time;
    a flat model fails inside INC (IndexError / UnboundLocalError), so the pass refuses it first.
    """
    import torch

    for m in module.modules():
        if type(m) in (torch.nn.ModuleList, torch.nn.Sequential):
            if any(count_linear(child) and list(child.children()) for child in m.children()):
                return True
    return False


def inc_config(config: TorchWeightOnlyConfig, model_path: Path) -> Any:
    """The INC config object for the algorithm (bits, group size and symmetry shared by all three)."""
    with quiet():
        from neural_compressor.torch.quantization import (
            AWQConfig,
            GPTQConfig,
            RTNConfig,
        )

    common = {"bits": config.bits, "group_size": config.group_size, "use_sym": config.symmetric}
    if config.algorithm == "rtn":
        # layer-wise mode loads an LLM's weights lazily from model_path; off for an in-memory model
        return RTNConfig(**common, use_layer_wise=False)
    # an empty model_path makes INC ask the Hugging Face hub for the model; any existing folder avoids it
    kind = GPTQConfig if config.algorithm == "gptq" else AWQConfig
    return kind(**common, model_path=str(model_path))


def quantize_inc(module: Any, config: TorchWeightOnlyConfig, split: Split, signature: Signature, work_dir: Path) -> Any:
    """Run INC on ``module`` (in place); GPTQ and AWQ see the calibration split batch by batch."""
    import torch

    from compressor.passes.quantize._torch_pt2e import batches

    with quiet():
        from neural_compressor.common import options
        from neural_compressor.torch.quantization import convert, prepare, quantize

    options.workspace = str(work_dir / "nc_workspace")  # INC's default is ./nc_workspace in the caller's folder
    cfg = inc_config(config, work_dir)
    with quiet(), torch.no_grad():
        if config.algorithm == "rtn":
            return quantize(module, cfg)
        first = next(batches(split, signature, config.batch_size))
        prepared = prepare(module, cfg, example_inputs=first[0] if len(first) == 1 else tuple(first))
        for inputs in batches(split, signature, config.batch_size):
            prepared(*inputs)
        return convert(prepared)


def fold_to_linear(qmodel: Any) -> tuple[Any, int, int]:
    """Replace INC's modules by plain nn.Linear with the recovered float weights, in place.

    Returns the model, the number of quantized layers and the most distinct weight values found in one
    (row, group) of any of them, which is at most 2**bits when the weights lie on the int grid.
    """
    import torch

    n_quantized, levels = 0, 0
    for kind in ("INCWeightOnlyLinear", "MulLinear"):  # inner modules first: a MulLinear wraps a quantized Linear
        for name, m in list(qmodel.named_modules()):
            if type(m).__name__ != kind:
                continue
            if kind == "INCWeightOnlyLinear":
                weight = m.recover().float()
                levels = max(levels, group_levels(weight, m.group_size))
                n_quantized += 1
                bias = m.bias
            else:  # x * s then W: the same as x times (W scaled column-wise by s)
                weight = m.linear.weight.float() * m.input_scale.float()[None, :]
                bias = m.linear.bias
            linear = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
            with torch.no_grad():
                linear.weight.copy_(weight)
                if bias is not None:
                    linear.bias.copy_(bias.float())
            qmodel.set_submodule(name, linear)
    return qmodel, n_quantized, levels


def group_levels(weight: Any, group_size: int) -> int:
    """The largest number of distinct values in one group of one output row."""
    cols = weight.shape[1]
    size = cols if group_size in (-1, 0) or group_size >= cols else group_size
    worst = 0
    for start in range(0, cols, size):
        block = weight[:, start:start + size]
        worst = max(worst, max(len(set(row.tolist())) for row in block))
    return worst


def write_weight_only(artifact: Artifact, config: TorchWeightOnlyConfig, ctx: PassContext, out_dir: Path) -> tuple[Path, dict[str, Any]]:
    """A torch model folder (same factory) whose Linear weights are INC's quantized-then-recovered weights."""
    import torch
    from safetensors.torch import save_file

    from compressor.frameworks._torch import (
        MODEL_JSON,
        WEIGHTS,
        build_module,
        load_module,
    )

    src = Path(artifact.path)
    module = load_module(src)
    layers = count_linear(module)
    work = Path(ctx.work_dir or out_dir) / "inc"
    work.mkdir(parents=True, exist_ok=True)
    try:
        qmodel = quantize_inc(module, config, ctx.data.split("calibration"), artifact.signature, work)
    except Exception as exc:  # INC raises bare library errors on models it does not expect
        text = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        raise PassError(f"quantize.torch.weight_only: neural-compressor {config.algorithm} failed "
                        f"({type(exc).__name__}: {text}); try algorithm: rtn.") from None
    qmodel, n_quantized, levels = fold_to_linear(qmodel)
    if n_quantized == 0:
        raise PassError(f"quantize.torch.weight_only: neural-compressor {config.algorithm} quantized none of the "
                        f"{layers} Linear layers; nothing was written.")
    desc = json.loads((src / MODEL_JSON).read_text())
    check = build_module(desc["factory"], desc.get("kwargs", {}))
    check.load_state_dict(qmodel.state_dict(), strict=True)  # same architecture, same keys
    out = out_dir / "model"
    shutil.copytree(src, out)
    state = {k: v.detach().contiguous().to(torch.float32) if v.is_floating_point() else v.detach().contiguous()
             for k, v in check.state_dict().items()}
    save_file(state, str(out / WEIGHTS))
    report = {"algorithm": config.algorithm, "bits": config.bits, "group_size": config.group_size,
              "layers_quantized": n_quantized, "linear_layers": layers, "max_levels_per_group": levels,
              "storage": "float32 weights on the int grid (simulation: the file does not shrink)"}
    return out, report
