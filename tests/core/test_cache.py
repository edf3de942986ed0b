"""Cache keys, atomic entries, memoized values and content sizes."""
from __future__ import annotations

from pathlib import Path

from compressor.artifact import (
    Artifact,
    Signature,
    TensorSpec,
    content_sha256,
    gzip_size,
)
from compressor.cache import Cache, cache_key
from compressor.formats import Format


def test_cache_key_is_canonical() -> None:
    assert cache_key("p", {"a": 1, "b": [1, 2]}) == cache_key("p", {"b": [1, 2], "a": 1})
    assert cache_key("p", {"a": 1}) != cache_key("p", {"a": 2})


def test_commit_and_get_round_trip(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    with cache.staging() as tmp:
        (tmp / "out").mkdir()
        f = tmp / "out" / "model.onnx"
        f.write_bytes(b"abc")
        art = Artifact(Format.ONNX, f, Signature((TensorSpec("x", ("batch", 3)),)), content_sha256(f))
        stored = cache.commit("k1", tmp, art, {"seconds": 1.0})
    assert stored.path.read_bytes() == b"abc" and stored.path.parent.parent == cache.entry_dir("k1")
    again, record = cache.get("k1")
    assert again.sha256 == art.sha256 and again.signature == art.signature and record == {"seconds": 1.0}
    assert cache.get("missing") is None
    assert list((tmp_path / "tmp").iterdir()) == []  # staging cleaned


def test_an_interrupted_pass_leaves_no_entry(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    try:
        with cache.staging() as tmp:
            (tmp / "half-written.onnx").write_bytes(b"x")
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    assert list((tmp_path / "objects").iterdir()) == [] and list((tmp_path / "tmp").iterdir()) == []


def test_memo(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    calls = []
    value, hit = cache.memo("metric", "k", lambda: calls.append(1) or 0.5)
    assert (value, hit) == (0.5, False)
    assert cache.memo("metric", "k", lambda: calls.append(1) or 0.7) == (0.5, True) and len(calls) == 1


def test_sizes(tmp_path: Path) -> None:
    f = tmp_path / "zeros.bin"
    f.write_bytes(bytes(100_000))
    assert gzip_size(f) < 1000
