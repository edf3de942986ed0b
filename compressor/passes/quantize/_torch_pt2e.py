"""PyTorch 2 Export (PT2E) quantization through torchao: the torch side of quantize.torch.static / .qat.

In torch 2.13 PT2E lives in torchao (``torchao.quantization.pt2e``); ``torch.ao.quantization.quantize_pt2e``
is gone. The flow: torch.export the model (symbolic batch), insert observers (``prepare_pt2e``) or fake
quantizers (``prepare_qat_pt2e``), calibrate or train, ``convert_pt2e`` to a graph of
``quantized_decomposed`` quantize / dequantize ops around float aten ops, export that again and save
it as a .pt2 program. Weights are stored as int8 constants in the program; eager execution runs the
reference q/dq graph (slow); the int8 speed comes from torch.compile (inductor) or another lowering.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compressor.artifact import Artifact
from compressor.errors import PassError

if TYPE_CHECKING:
    from compressor.passes.base import PassContext
    from compressor.passes.quantize.torch_static import (
        TorchQatConfig,
        TorchStaticQuantConfig,
    )

log = logging.getLogger(__name__)

QUANT_NAMESPACE = "quantized_decomposed"
EPS = 2**-12  # the x86 quantizer's scale floor, reused for the per-tensor weight variant


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """torchao's import and its deprecation notices (XNNPACKQuantizer, torch.ao) go to the log, not the console."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch_log = logging.getLogger("torch")
        level = torch_log.level
        torch_log.setLevel(logging.ERROR)
        try:
            yield
        finally:
            torch_log.setLevel(level)


def build_quantizer(kind: str, per_channel: bool, is_qat: bool) -> Any:
    """A torchao PT2E quantizer: X86InductorQuantizer (u8 activations, s8 weights) or XNNPACK (s8 / s8)."""
    with quiet():
        if kind == "x86":
            import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as xiq

            config = xiq.get_default_x86_inductor_quantization_config(is_qat=is_qat)
            if not per_channel:  # the x86 default is per-channel weights; PTQ may ask for one scale per tensor
                config = dataclasses.replace(config, weight=per_tensor_weight(config.weight))
            return xiq.X86InductorQuantizer().set_global(config)
        # XNNPACKQuantizer left torchao's public API for executorch; torchao keeps this copy for its tests
        import torchao.testing.pt2e._xnnpack_quantizer as xq

        quantizer = xq.XNNPACKQuantizer()
        return quantizer.set_global(xq.get_symmetric_quantization_config(is_per_channel=per_channel, is_qat=is_qat))


def per_tensor_weight(spec: Any) -> Any:
    """The x86 weight spec with one symmetric scale per tensor (MinMax observer) instead of per channel."""
    import torch
    from torchao.quantization.pt2e import MinMaxObserver

    return dataclasses.replace(spec, qscheme=torch.per_tensor_symmetric, ch_axis=None,
                               observer_or_fake_quant_ctr=MinMaxObserver.with_args(eps=EPS))


def export_graph(module: Any, signature: Any) -> Any:
    """torch.export ``module`` with a symbolic batch and return the graph module PT2E works on."""
    import torch

    from compressor.frameworks._torch import sample_inputs

    args = sample_inputs(signature, batch=4)
    batch = torch.export.Dim("batch", min=1, max=65536)
    try:
        with quiet():
            return torch.export.export(module, args, dynamic_shapes=tuple({0: batch} for _ in args)).module()
    except Exception as exc:
        raise PassError(f"PT2E quantization: torch.export could not capture the model ({first_line(exc)}); "
                        f"make its forward traceable or use quantize.onnx.static after convert.onnx.") from None


def save_program(module: Any, signature: Any, path: Path) -> Path:
    """Export the converted q/dq graph again (symbolic batch) and write it as a .pt2 program."""
    import torch

    from compressor.frameworks._torch import sample_inputs

    args = sample_inputs(signature, batch=4)
    batch = torch.export.Dim("batch", min=1, max=65536)
    with quiet():
        program = torch.export.export(module, args, dynamic_shapes=tuple({0: batch} for _ in args))
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.export.save(program, str(path))
    return path


def quant_ops(module: Any) -> dict[str, int]:
    """How many quantize / dequantize calls the graph makes, by op (quantize_per_tensor: 3, ...)."""
    graph = module.graph
    counts = Counter(str(n.target).split(".")[1] for n in graph.nodes
                     if n.op == "call_function" and str(n.target).startswith(QUANT_NAMESPACE + "."))
    return dict(sorted(counts.items()))


def batches(split: Any, signature: Any, batch_size: int) -> Iterator[list[Any]]:
    """The split's inputs as lists of tensors, ``batch_size`` samples at a time, in order."""
    from compressor.passes._torch_fit import to_tensors

    for start in range(0, len(split), batch_size):
        yield to_tensors(signature, {k: v[start:start + batch_size] for k, v in split.inputs.items()})


def load_input(artifact: Artifact) -> Any:
    from compressor.frameworks._torch import load_torch

    return load_torch(artifact).eval()


def write_static(artifact: Artifact, config: TorchStaticQuantConfig, ctx: PassContext, out_dir: Path) -> tuple[Path, dict[str, Any]]:
    """Post-training static PT2E quantization calibrated on the calibration split; a .pt2 program."""
    import torch

    with quiet():
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    split = ctx.data.split("calibration")
    graph = export_graph(load_input(artifact), artifact.signature)
    with quiet():
        prepared = prepare_pt2e(graph, build_quantizer(config.quantizer, config.per_channel, is_qat=False))
        with torch.no_grad():
            for inputs in batches(split, artifact.signature, config.batch_size):
                prepared(*inputs)
        converted = convert_pt2e(prepared)
    ctx.say(f"calibrated on {len(split)} samples")
    return finish(converted, artifact, config, out_dir, {"calibration_samples": len(split)})


def write_qat(artifact: Artifact, config: TorchQatConfig, ctx: PassContext, out_dir: Path) -> tuple[Path, dict[str, Any]]:
    """Quantization-aware training: fake-quantize, fine-tune on the training split, convert; a .pt2 program."""
    with quiet():
        from torchao.quantization.pt2e import allow_exported_model_train_eval
        from torchao.quantization.pt2e.quantize_pt2e import (
            convert_pt2e,
            prepare_qat_pt2e,
        )

    from compressor.passes._torch_fit import fit

    # exported in train mode so BatchNorm is captured as training BN, which QAT folds into the conv
    graph = export_graph(load_input(artifact).train(), artifact.signature)
    with quiet():
        prepared = prepare_qat_pt2e(graph, build_quantizer(config.quantizer, config.per_channel, is_qat=True))
    # an exported graph has no real train()/eval(); this makes them swap BN and dropout ops in place,
    # so the shared fit loop (which calls train() then eval()) works unchanged
    allow_exported_model_train_eval(prepared)
    losses = fit(prepared, ctx.data.split("training"), artifact.signature, epochs=config.epochs, lr=config.lr,
                 batch_size=config.batch_size, seed=ctx.seed, say=ctx.say, workers=config.workers)
    prepared.eval()
    with quiet():
        converted = convert_pt2e(prepared)
    return finish(converted, artifact, config, out_dir, {"epochs": config.epochs, "losses": [round(v, 4) for v in losses]})


def finish(converted: Any, artifact: Artifact, config: TorchStaticQuantConfig, out_dir: Path,
           extra: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
    """Refuse a graph with nothing quantized; otherwise save it and describe it."""
    drop_unused_state(converted)
    ops = quant_ops(converted)
    if not any(name.startswith("quantize_") for name in ops):
        raise PassError(
            f"PT2E quantization with the {config.quantizer} quantizer quantized nothing in this model (no Conv / "
            f"Linear / MatMul it annotates); nothing to gain, so no artifact was written."
        )
    path = save_program(converted, artifact.signature, out_dir / "model.pt2")
    report = {"quantizer": config.quantizer, "per_channel": config.per_channel, "quant_ops": ops, **extra}
    return path, report


def drop_unused_state(module: Any) -> list[str]:
    """Delete parameters and buffers no graph node reads; return their names.

    convert_pt2e folds each quantized weight into a new int8 constant but leaves the float original
    on the module, and torch.export would save both (a program larger than the float model).
    """
    used = {str(n.target) for n in module.graph.nodes if n.op == "get_attr"}
    dropped = []
    for name, _ in [*module.named_parameters(), *module.named_buffers()]:
        if name in used:
            continue
        owner_name, _, attr = name.rpartition(".")
        owner = module.get_submodule(owner_name) if owner_name else module
        delattr(owner, attr)
        dropped.append(name)
    return dropped


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
