"""Text for language models: documents split deterministically, tokenised, cut into fixed-length chunks.

The ``text`` data source (``data: {source: text, text: {...}}``) reads documents from files (one
document per blank-line separated paragraph block) or from a ``package.module:fn`` returning a list
of strings (package text such as CPython's bundled documentation), splits the *documents* into
train and test (seeded; a document is never cut across splits), tokenises each split with the
model's own ``tokenizer.json`` (Hugging Face ``tokenizers``) and cuts the token stream, documents
joined by the end-of-text token, into chunks of ``context_length + 1`` tokens. A sample's
``input_ids`` are the first ``context_length`` tokens of a chunk, its labels ``y`` the next token at
every position, and ``attention_mask`` is all ones: perplexity is token-weighted over a fixed context.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from compressor.errors import DataError


def split_documents(docs: list[str], test_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """(train, test) documents: a seeded permutation; test gets round(n * test_fraction), at least one."""
    if len(docs) < 2:
        raise DataError(f"text source: {len(docs)} document(s); a train and a test split need at least 2.")
    order = np.random.default_rng(seed).permutation(len(docs))
    n_test = min(max(1, int(round(len(docs) * test_fraction))), len(docs) - 1)
    test = set(order[:n_test].tolist())
    return [d for i, d in enumerate(docs) if i not in test], [d for i, d in enumerate(docs) if i in test]


def read_documents(files: list[Path] | None = None, factory: str | None = None) -> list[str]:
    """Documents from text files (blank-line separated blocks) or from a ``package.module:fn``."""
    if factory:
        from compressor.code import load_attr

        docs = load_attr(factory)()
        if not isinstance(docs, (list, tuple)) or not all(isinstance(d, str) for d in docs):
            raise DataError(f"data.text.documents '{factory}' must return a list of strings; it returned "
                            f"{type(docs).__name__}.")
        return [d for d in docs if d.strip()]
    docs = []
    for path in files or []:
        if not path.is_file():
            raise DataError(f"data.text.files names '{path}', which is not a file; give UTF-8 text files.")
        text = path.read_text(encoding="utf-8", errors="strict")
        docs += [block.strip() for block in re.split(r"\n\s*\n", text) if block.strip()]
    return docs


def load_tokenizer(path: Path) -> Any:
    """A Hugging Face ``tokenizers`` tokenizer from its tokenizer.json (a JSON file: no code runs)."""
    if not Path(path).is_file():
        raise DataError(f"data.text.tokenizer '{path}' does not exist; give the model's tokenizer.json "
                        f"(train the model first if it makes one).")
    try:
        from tokenizers import Tokenizer
    except ImportError as exc:
        raise DataError("the text data source needs the 'tokenizers' package; pip install tokenizers.") from exc
    try:
        return Tokenizer.from_file(str(path))
    except Exception as exc:  # the Rust side raises its own Exception type
        raise DataError(f"data.text.tokenizer '{path}' is not a tokenizer.json the tokenizers library reads "
                        f"({str(exc).splitlines()[0][:200]}); give the model's own tokenizer file.") from None


def end_of_text_id(tokenizer: Any, token: str) -> int:
    """The id of the token that separates documents; refused when the tokenizer does not have it."""
    token_id = tokenizer.token_to_id(token)
    if token_id is None:
        raise DataError(f"data.text.eos_token '{token}' is not in the tokenizer's vocabulary; name its "
                        f"end-of-text token (e.g. '</s>' or '<|endoftext|>').")
    return int(token_id)


def token_chunks(docs: list[str], tokenizer: Any, context_length: int, eos_id: int) -> np.ndarray:
    """Documents tokenised, joined by ``eos_id`` and cut into (n, context_length + 1) int64 chunks; the tail is dropped."""
    stream: list[int] = []
    for enc in tokenizer.encode_batch(docs, add_special_tokens=False):
        stream += enc.ids
        stream.append(eos_id)
    width = context_length + 1
    n = len(stream) // width
    return np.asarray(stream[: n * width], dtype=np.int64).reshape(n, width)


def chunk_samples(chunks: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Inputs (``input_ids``, ``attention_mask``) and next-token labels of a split's chunks."""
    ids = np.ascontiguousarray(chunks[:, :-1])
    return {"input_ids": ids, "attention_mask": np.ones_like(ids)}, np.ascontiguousarray(chunks[:, 1:])


def load_text_splits(text: Any, test_fraction: float, seed: int,
                     resolve: Any = Path) -> dict[str, tuple[dict[str, np.ndarray], np.ndarray]]:
    """{'train': (inputs, labels), 'test': (inputs, labels)} for a pipeline's ``data.text`` section."""
    files = [resolve(f) for f in text.files] if text.files else None
    docs = read_documents(files, text.documents)
    train_docs, test_docs = split_documents(docs, test_fraction, seed)
    tokenizer = load_tokenizer(resolve(text.tokenizer))
    eos = end_of_text_id(tokenizer, text.eos_token)
    splits = {}
    for name, part in (("train", train_docs), ("test", test_docs)):
        chunks = token_chunks(part, tokenizer, text.context_length, eos)
        if len(chunks) == 0:
            raise DataError(f"text source: the {name} split has fewer than {text.context_length + 1} tokens; "
                            f"give more text or a shorter data.text.context_length.")
        splits[name] = chunk_samples(chunks)
    return splits
