"""The MiniLM sample's data: 240 sentences on six topics, kept in this folder, tokenized by the
model's own tokenizer (padded to the longest sentence).

    data: {factory: samples.minilm.data:load}
"""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SENTENCES = HERE / "sentences.tsv"


def sentences() -> tuple[list[str], list[str]]:
    """(topics, sentences) in file order."""
    rows = [line.split("\t", 1) for line in SENTENCES.read_text().splitlines() if line.strip()]
    return [t for t, _ in rows], [s for _, s in rows]


def topics() -> list[str]:
    """The topic names; a label is an index into this list."""
    return sorted(set(sentences()[0]))


@lru_cache(maxsize=4)
def tokenizer():  # noqa: ANN201 - a transformers tokenizer
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    from samples.minilm.model import model_dir

    return AutoTokenizer.from_pretrained(str(model_dir()))


def encode(texts: list[str], max_length: int | None = None) -> dict[str, np.ndarray]:
    """Token ids and attention mask as int64, padded to the longest text (or to max_length)."""
    padding = "max_length" if max_length else "longest"
    enc = tokenizer()(texts, padding=padding, truncation=True, max_length=max_length or 512, return_tensors="np")
    return {"input_ids": enc["input_ids"].astype(np.int64), "attention_mask": enc["attention_mask"].astype(np.int64)}


def load(limit: int | None = None) -> dict[str, np.ndarray]:
    """{'x.input_ids', 'x.attention_mask', 'y'}: every sentence (or the first ``limit`` of each topic)."""
    labels_text, texts = sentences()
    names = topics()
    if limit is not None:
        keep = [i for i, t in enumerate(labels_text) if labels_text[: i + 1].count(t) <= limit]
        labels_text, texts = [labels_text[i] for i in keep], [texts[i] for i in keep]
    enc = encode(texts)
    return {"x.input_ids": enc["input_ids"], "x.attention_mask": enc["attention_mask"],
            "y": np.array([names.index(t) for t in labels_text], dtype=np.int64)}


def load_small() -> dict[str, np.ndarray]:
    """Five sentences per topic: the test suite's setting."""
    return load(limit=5)
