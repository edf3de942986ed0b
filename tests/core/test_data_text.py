"""Language-model data and metrics: documents split before chunking, next-token labels, token-weighted
perplexity, greedy agreement, an empty key/value cache fed where the data has none, a relative budget."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from compressor.artifact import BATCH, PAST, SEQUENCE, Signature, TensorSpec
from compressor.data import feeds_for
from compressor.data_text import chunk_samples, read_documents, split_documents, token_chunks
from compressor.errors import ConfigError, DataError
from compressor.metrics import get_metric, greedy_agreement


class WordTokenizer:
    """A stand-in with the two calls the text source makes: one id per word, 0 is end-of-text."""

    class Encoding:
        def __init__(self, ids: list[int]) -> None:
            self.ids = ids

    def encode_batch(self, docs: list[str], add_special_tokens: bool = False) -> list[Encoding]:
        return [self.Encoding([len(w) for w in d.split()]) for d in docs]


def test_documents_split_before_chunking_and_deterministic() -> None:
    docs = [f"document {i} " + "word " * i for i in range(20)]
    train, test = split_documents(docs, 0.25, seed=0)
    assert len(test) == 5 and len(train) == 15
    assert not set(train) & set(test)
    assert split_documents(docs, 0.25, seed=0) == (train, test)
    assert split_documents(docs, 0.25, seed=1) != (train, test)
    with pytest.raises(DataError, match="at least 2"):
        split_documents(["only one"], 0.1, 0)


def test_read_documents_splits_files_at_blank_lines(tmp_path: Path) -> None:
    f = tmp_path / "a.txt"
    f.write_text("first para\nline two\n\n\nsecond para\n  \nthird\n")
    assert read_documents([f]) == ["first para\nline two", "second para", "third"]
    with pytest.raises(DataError, match="not a file"):
        read_documents([tmp_path / "missing.txt"])


def test_chunks_carry_next_token_labels() -> None:
    chunks = token_chunks(["a bb ccc", "dddd eeeee"], WordTokenizer(), context_length=3, eos_id=0)
    # stream: 1 2 3 0 4 5 0 -> one chunk of 4 tokens, the tail dropped
    assert chunks.tolist() == [[1, 2, 3, 0]]
    inputs, labels = chunk_samples(chunks)
    assert inputs["input_ids"].tolist() == [[1, 2, 3]] and labels.tolist() == [[2, 3, 0]]
    assert inputs["attention_mask"].tolist() == [[1, 1, 1]]


def test_perplexity_is_token_weighted_exp_nll() -> None:
    metric = get_metric("perplexity")
    assert not metric.higher_is_better and metric.labels == "tokens"
    vocab = 8
    uniform = np.zeros((2, 3, vocab), dtype=np.float32)
    labels = np.array([[1, 2, 3], [4, 5, 6]])
    assert metric.fn(uniform, labels, None) == pytest.approx(vocab)
    sure = np.full((1, 2, vocab), -30.0, dtype=np.float32)
    sure[0, 0, 1] = sure[0, 1, 2] = 30.0
    assert metric.fn(sure, np.array([[1, 2]]), None) == pytest.approx(1.0)
    # half the tokens certain, half uniform: exp(mean(0, log 8)) = sqrt(8)
    mixed = np.concatenate([sure, np.zeros((1, 2, vocab), dtype=np.float32)], axis=1)
    assert metric.fn(mixed, np.array([[1, 2, 0, 0]]), None) == pytest.approx(np.sqrt(8), rel=1e-6)
    with pytest.raises(DataError, match="next-token labels"):
        metric.fn(uniform, np.array([1, 2]), None)


def test_greedy_agreement_counts_positions_and_misses() -> None:
    assert greedy_agreement([1, 2, 3, 4], [1, 2, 3, 4]) == 1.0
    assert greedy_agreement([1, 9, 3, 9], [1, 2, 3, 4]) == 0.5
    assert greedy_agreement([1, 2], [1, 2, 3, 4]) == 0.5  # a shorter generation cannot score higher


def test_empty_cache_is_fed_where_the_data_has_none() -> None:
    sig = Signature(inputs=(TensorSpec("input_ids", (BATCH, SEQUENCE), "int64"),
                            TensorSpec("attention_mask", (BATCH, "total_sequence"), "int64"),
                            TensorSpec("past_key_values.0.key", (BATCH, 2, PAST, 8))))
    ids = np.arange(12, dtype=np.int64).reshape(3, 4)
    feeds = feeds_for(sig, {"input_ids": ids, "attention_mask": np.ones_like(ids)})
    assert feeds["past_key_values.0.key"].shape == (3, 2, 0, 8)
    assert feeds["past_key_values.0.key"].dtype == np.float32
    with pytest.raises(DataError, match="needs inputs"):  # the token ids themselves are never made up
        feeds_for(sig, {"attention_mask": np.ones_like(ids), "other": ids})


def test_text_source_needs_its_section_and_a_relative_budget_scales() -> None:
    from compressor.run.pipeline import parse_pipeline

    base = {"name": "lm", "model": {"path": "m.onnx"}, "metric": "perplexity", "variants": {"a": ["convert.ort"]}}
    with pytest.raises(ConfigError, match="text source needs"):
        parse_pipeline({**base, "data": {"source": "text"}}, Path("."))
    with pytest.raises(ConfigError, match="documents"):
        parse_pipeline({**base, "data": {"source": "text", "text": {"tokenizer": "t.json"}}}, Path("."))
    from compressor.run.spec import BudgetSpec

    budget = BudgetSpec(max_drop=0.03, relative=True)
    assert budget.allows(2.9, reference=100.0) and not budget.allows(3.1, reference=100.0)
    assert not BudgetSpec(max_drop=0.03).allows(2.9, reference=100.0)
