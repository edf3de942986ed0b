"""Causal language models in torch: the trait a module declares, and its flat KV-cache signature.

A torch module is a causal LM with a key/value cache when its class declares two methods:
``kv_cache_layout() -> (layers, kv_heads, head_dim)`` and
``forward_with_cache(input_ids, attention_mask, past) -> (logits, presents)``, where ``past`` and
``presents`` are lists of one (key, value) pair per layer, each (batch, kv_heads, length, head_dim).
``flat_cache_module`` turns such a module into one with flat tensors in and out, named as
onnxruntime-genai names them (``past_key_values.0.key`` ... ``present.0.value``): what ``convert.onnx``
exports and what the torch runtime runs when a generation measurement asks for the cache.
"""
from __future__ import annotations

from typing import Any

from compressor.artifact import BATCH, PAST, SEQUENCE, Signature, TensorSpec

TOTAL = "total_sequence"  # the attention mask covers the past and the new tokens


def is_causal_lm(module: Any) -> bool:
    """Whether ``module`` declares the KV-cache trait (both methods on its class)."""
    return all(callable(getattr(type(module), m, None)) for m in ("kv_cache_layout", "forward_with_cache"))


def cache_input_names(layers: int) -> list[str]:
    """The past key/value input names of a ``layers``-layer model, in order."""
    return [f"past_key_values.{i}.{kind}" for i in range(layers) for kind in ("key", "value")]


def cache_output_names(layers: int) -> list[str]:
    """The present key/value output names, in order."""
    return [f"present.{i}.{kind}" for i in range(layers) for kind in ("key", "value")]


def cache_signature(module: Any, vocab: int) -> Signature:
    """The flat signature: input_ids, attention_mask and past in; logits and presents out."""
    layers, heads, head_dim = module.kv_cache_layout()
    past = [TensorSpec(n, (BATCH, heads, PAST, head_dim)) for n in cache_input_names(layers)]
    present = [TensorSpec(n, (BATCH, heads, TOTAL, head_dim)) for n in cache_output_names(layers)]
    return Signature(
        inputs=(TensorSpec("input_ids", (BATCH, SEQUENCE), "int64"),
                TensorSpec("attention_mask", (BATCH, TOTAL), "int64"), *past),
        outputs=(TensorSpec("logits", (BATCH, SEQUENCE, vocab)), *present),
    )


def flat_cache_module(module: Any) -> Any:
    """A module taking (input_ids, attention_mask, *past flat) and returning (logits, *presents flat)."""
    from torch import nn

    class FlatCache(nn.Module):
        def __init__(self, lm: Any) -> None:
            super().__init__()
            self.lm = lm

        def forward(self, input_ids: Any, attention_mask: Any, *past: Any) -> tuple:
            pairs = [(past[i], past[i + 1]) for i in range(0, len(past), 2)]
            logits, presents = self.lm.forward_with_cache(input_ids, attention_mask, pairs)
            return (logits, *[t for pair in presents for t in pair])

    return FlatCache(module).eval()


def empty_cache(module: Any, batch: int, length: int = 0, seed: int | None = None) -> tuple[Any, ...]:
    """Past tensors for ``batch`` sequences of ``length`` cached tokens: zeros, or random with ``seed``."""
    import torch

    layers, heads, head_dim = module.kv_cache_layout()
    shape = (batch, heads, length, head_dim)
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    make = (lambda: torch.randn(shape, generator=gen)) if gen is not None else (lambda: torch.zeros(shape))
    return tuple(make() for _ in range(2 * layers))
