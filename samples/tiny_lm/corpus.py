"""The tiny LM's corpus: English text that ships with every CPython, read without running any code.

Documents are CPython's ``pydoc_data.topics`` (the language reference sections ``help()`` shows)
and the docstrings of the standard library's modules, classes and functions, read from the source
files with ``ast`` (no module is imported). A docstring shorter than ``MIN_DOC_CHARS`` is left out.
The order is fixed (sorted), so a Python version gives the same corpus on every machine; the
held-out split is made by ``compressor.data.split_documents`` over these documents.

    data: {source: text, text: {documents: samples.tiny_lm.corpus:documents, ...}}
"""
from __future__ import annotations

import ast
import hashlib
import sysconfig
from functools import lru_cache
from pathlib import Path

MIN_DOC_CHARS = 200
# folders of the standard library that are tests, tools or vendored code rather than documentation
SKIP_PARTS = frozenset({"test", "tests", "idlelib", "site-packages", "lib2to3", "tkinter", "turtledemo",
                        "ensurepip", "__pycache__", "dist-packages"})


def _topics() -> list[str]:
    from pydoc_data.topics import topics

    return [topics[name].strip() for name in sorted(topics)]


def docstrings(root: Path) -> list[str]:
    """The docstrings (modules, classes, functions) of the .py files under ``root``, read with ``ast``: at least
    ``MIN_DOC_CHARS`` long, folders in ``SKIP_PARTS`` left out, no module imported."""
    docs = []
    files = sorted(p for p in root.rglob("*.py") if not (set(p.relative_to(root).parts) & SKIP_PARTS))
    for path in files:
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError, OSError):
            continue  # a file this Python cannot parse holds no documentation for it
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc and len(doc) >= MIN_DOC_CHARS:
                    docs.append(doc.strip())
    return docs


@lru_cache(maxsize=1)
def _all_documents() -> tuple[str, ...]:
    return tuple(_topics() + docstrings(Path(sysconfig.get_path("stdlib"))))


def documents() -> list[str]:
    """Every document of the corpus, in a fixed order."""
    return list(_all_documents())


def small_documents() -> list[str]:
    """The language reference topics alone (no source file is parsed): the tests' setting."""
    return _topics()


def describe(docs: list[str]) -> dict[str, object]:
    """Documents, characters and a content hash: what the training record and the README state."""
    digest = hashlib.sha256("\x00".join(docs).encode()).hexdigest()
    return {"documents": len(docs), "characters": sum(len(d) for d in docs), "sha256": digest}
