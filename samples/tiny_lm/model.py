"""The tiny LM as a torch module: transformers' Llama decoder, built from a local Hugging Face folder.

``TinyLM`` holds the ``model`` (LlamaModel) and ``lm_head`` of a ``LlamaForCausalLM``, so its state
dict has the same names as the folder's model.safetensors and the pipeline loads those weights as
they are (``model: {factory: samples.tiny_lm.model:TinyLM, weights: model/model.safetensors}``).
It declares the causal-LM trait that ``convert.onnx`` and the generation measurements read
(``compressor.frameworks._torch_lm``): ``kv_cache_layout()`` and ``forward_with_cache()``.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

HERE = Path(__file__).resolve().parent


class TinyLM(nn.Module):
    """input_ids, attention_mask (int64, batch x sequence) -> next-token logits (batch x sequence x vocab)."""

    def __init__(self, folder: str | None = None) -> None:
        super().__init__()
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import LlamaConfig, LlamaForCausalLM

        path = Path(folder) if folder else HERE / "model"
        if not (path / "config.json").is_file():
            from compressor.errors import ModelLoadError

            raise ModelLoadError(f"the tiny LM folder '{path}' has no config.json; train it first: "
                                 f"python -m samples.tiny_lm.train")
        self.config = LlamaConfig.from_json_file(str(path / "config.json"))
        self.config._attn_implementation = "eager"  # plain matmuls: the same graph in torch and in ONNX
        lm = LlamaForCausalLM(self.config)
        self.model = lm.model
        self.lm_head = lm.lm_head

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
        return self.lm_head(hidden)

    def kv_cache_layout(self) -> tuple[int, int, int]:
        """(layers, key/value heads, head size) of the cache ``forward_with_cache`` takes and returns."""
        c = self.config
        return c.num_hidden_layers, c.num_key_value_heads, c.hidden_size // c.num_attention_heads

    def forward_with_cache(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                           past: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, list]:
        """Logits of the new tokens and the cache grown by them.

        ``attention_mask`` covers the past and the new tokens (batch x (past + sequence)); positions
        continue from the past length (no left padding).
        """
        from transformers import DynamicCache

        cache = DynamicCache(ddp_cache_data=past, config=self.config)
        past_len = past[0][0].shape[2]
        positions = torch.arange(input_ids.shape[1], device=input_ids.device) + past_len
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, cache=cache,
                         position_ids=positions.unsqueeze(0).expand(input_ids.shape[0], -1), use_cache=True)
        grown = cache  # updated in place with the new tokens
        presents = [(layer.keys, layer.values) for layer in grown.layers]
        return self.lm_head(out.last_hidden_state), presents
