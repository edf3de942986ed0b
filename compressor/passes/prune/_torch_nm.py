"""Applying N:M masks to a torch module (the torch side of prune.nm)."""
from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compressor.artifact import Artifact
from compressor.errors import PassError

if TYPE_CHECKING:
    from compressor.passes.base import PassContext
    from compressor.passes.prune.nm import NMPruningConfig

GPU_NOTE = ("on a GPU with sparse tensor cores (NVIDIA Ampere+, compute capability >= 8.0) 2:4 sparse matmuls "
            "run at up to 2x the dense math rate with about half the weight memory (torch "
            "to_sparse_semi_structured, TensorRT sparsity); end-to-end gains are lower for memory- or launch-bound layers")
CPU_NOTE = ("CPU runtimes run these weights as dense tensors: the same file size and the same latency; "
            "only the gzip-compressed download shrinks")


def grouped_view(weight: Any) -> Any:
    """The weight as rows of input weights: Linear (out, in); Conv (out, kh, kw, in) flattened to (out*kh*kw, in)."""
    if weight.dim() == 2:
        return weight
    return weight.permute(0, *range(2, weight.dim()), 1).reshape(-1, weight.shape[1])


def nm_mask(weight: Any, n: int, m: int) -> Any:
    """Boolean keep-mask of ``weight``'s shape: the ``n`` largest |w| in every ``m`` consecutive inputs."""
    import torch

    rows = grouped_view(weight.detach().abs())
    groups = rows.reshape(rows.shape[0], -1, m)
    top = torch.topk(groups, n, dim=-1).indices
    keep = torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, top, True).reshape(rows.shape)
    if weight.dim() == 2:
        return keep
    shape = (weight.shape[0], *weight.shape[2:], weight.shape[1])
    return keep.reshape(shape).permute(0, weight.dim() - 1, *range(1, weight.dim() - 1)).contiguous()


def pattern_holds(weight: Any, n: int, m: int) -> bool:
    """Whether every group of ``m`` inputs has at most ``n`` non-zeros."""
    rows = grouped_view(weight.detach())
    return bool(((rows.reshape(rows.shape[0], -1, m) != 0).sum(-1) <= n).all())


def _gzip_state(module: Any) -> int:
    from safetensors.torch import save

    raw = save({k: v.detach().contiguous() for k, v in module.state_dict().items()})
    return len(zlib.compress(raw, 9))


def nm_prune(artifact: Artifact, config: NMPruningConfig, ctx: PassContext, out_dir: Path) -> dict[str, Any]:
    """Mask, fine-tune with the mask held, save; report the pattern, the sizes and the honest gains."""
    import torch

    from compressor.frameworks._torch import MODEL_JSON, load_module, save_module
    from compressor.passes._torch_fit import fit
    from compressor.passes.prune._torch import (
        apply_masks,
        select_prunable,
        sparsity_report,
    )

    module = load_module(Path(artifact.path))
    layers, skipped = select_prunable(module, config, "prune.nm")
    for name in list(layers):
        if layers[name].weight.shape[1] % config.m:
            skipped[name] = f"input dimension {layers[name].weight.shape[1]} is not a multiple of m={config.m}"
            del layers[name]
    if not layers:
        raise PassError(f"prune.nm found no layer whose input dimension is a multiple of m={config.m} "
                        f"(skipped: {skipped}); use another m or prune.magnitude.")
    gzip_before = _gzip_state(module)
    masks = {n: nm_mask(layer.weight, config.n, config.m) for n, layer in layers.items()}
    apply_masks(layers, masks)
    history = []
    if config.finetune_epochs:
        split = ctx.data.split("training", needed_by="prune.nm fine-tuning")
        history = fit(module, split, artifact.signature, epochs=config.finetune_epochs, lr=config.lr,
                      batch_size=config.batch_size, seed=ctx.seed, after_step=lambda *_: apply_masks(layers, masks),
                      say=ctx.say, workers=config.workers)
    if not all(pattern_holds(layer.weight, config.n, config.m) for layer in layers.values()):
        raise PassError("prune.nm lost its N:M pattern during fine-tuning; this is a bug, please report it.")
    desc = json.loads((Path(artifact.path) / MODEL_JSON).read_text())
    save_module(module, desc["factory"], desc.get("kwargs", {}), out_dir)
    report = sparsity_report(layers)
    cuda = torch.cuda.is_available() and torch.cuda.get_device_capability()[0] >= 8
    report.update(
        pattern=f"{config.n}:{config.m}", layers_pruned=len(layers), layers_skipped=skipped,
        layers_skipped_count=len(skipped), finetune_loss=history,
        gzip_weights_before=gzip_before, gzip_weights_after=_gzip_state(module),
        cpu_gain=CPU_NOTE, gpu_gain=GPU_NOTE if config.n * 2 == config.m else
        f"sparse tensor cores accelerate only 2:4 (and 1:2 for fp32); {config.n}:{config.m} gains size after compression only",
        sparse_tensor_cores_here=bool(cuda),
    )
    return report
