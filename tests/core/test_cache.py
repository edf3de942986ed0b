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


def _stored(cache: Cache, key: str, content: bytes = b"abc") -> Artifact:
    with cache.staging() as tmp:
        (tmp / "out").mkdir()
        f = tmp / "out" / "model.onnx"
        f.write_bytes(content)
        art = Artifact(Format.ONNX, f, Signature((TensorSpec("x", ("batch", 3)),)), content_sha256(f))
        return cache.commit(key, tmp, art, {"seconds": 1.0})


def test_a_flipped_byte_discards_the_entry(tmp_path: Path) -> None:
    stored = _stored(Cache(tmp_path), "k1", b"abcdef")
    stored.path.write_bytes(b"abXdef")
    cache = Cache(tmp_path)  # the next run
    assert cache.get("k1") is None
    assert not cache.entry_dir("k1").exists() and list((tmp_path / "tmp").iterdir()) == []
    assert len(cache.warnings) == 1 and "cache entry k1 failed its content check" in cache.warnings[0]
    assert "and was recomputed" in cache.warnings[0]


def test_a_deleted_artifact_or_an_edited_record_discards_the_entry(tmp_path: Path) -> None:
    import json

    first = _stored(Cache(tmp_path), "gone")
    first.path.unlink()
    _stored(Cache(tmp_path), "edited")
    entry = tmp_path / "objects" / "edited" / "entry.json"
    data = json.loads(entry.read_text())
    data["record"]["seconds"] = 99.0
    entry.write_text(json.dumps(data))
    seen: list[str] = []
    cache = Cache(tmp_path, on_warning=seen.append)
    assert cache.get("gone") is None and cache.get("edited") is None
    assert len(seen) == 2 and "is missing" in seen[0] and "does not match its checksum" in seen[1]


def test_an_entry_path_cannot_leave_its_folder(tmp_path: Path) -> None:
    import hashlib
    import json

    _stored(Cache(tmp_path), "k")
    outside = tmp_path / "secret.onnx"
    outside.write_bytes(b"abc")
    entry = tmp_path / "objects" / "k" / "entry.json"
    data = json.loads(entry.read_text())
    data["artifact"]["path"] = "../../secret.onnx"
    from compressor.cache import canonical_json

    data["checksum"] = hashlib.sha256(canonical_json(["k", data["artifact"], data["record"]]).encode()).hexdigest()
    entry.write_text(json.dumps(data))
    assert Cache(tmp_path).get("k") is None and outside.is_file()


def test_a_second_writer_keeps_the_first_complete_entry(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    with cache.staging() as a, cache.staging() as b:  # two runs computed the same key at once
        arts = []
        for folder, content in ((a, b"first"), (b, b"second")):
            (folder / "m.onnx").write_bytes(content)
            arts.append(Artifact(Format.ONNX, folder / "m.onnx", Signature(()), content_sha256(folder / "m.onnx")))
        kept_first = cache.commit("k", a, arts[0], {})
        kept_second = cache.commit("k", b, arts[1], {})
    assert kept_first.path.read_bytes() == b"first" and kept_second.path == kept_first.path
    assert kept_second.sha256 == arts[0].sha256 and list((tmp_path / "tmp").iterdir()) == []


def test_an_edited_memo_is_recomputed(tmp_path: Path) -> None:
    import json

    cache = Cache(tmp_path)
    assert cache.memo("metric", "k", lambda: 0.5) == (0.5, False)
    path = next((tmp_path / "memo").iterdir())
    record = json.loads(path.read_text())
    record["value"] = 0.99
    path.write_text(json.dumps(record))
    again = Cache(tmp_path)
    assert again.memo("metric", "k", lambda: 0.5) == (0.5, False) and "metric-k failed" in again.warnings[0]
    assert again.memo("metric", "k", lambda: 0.7) == (0.5, True)
    path.write_text('{"value": 0.5}')  # the old format, without a checksum, is not trusted either
    assert Cache(tmp_path).memo("metric", "k", lambda: 0.6) == (0.6, False)


def test_memo_refresh_recomputes_and_stores(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    cache.memo("bench", "k", lambda: {"p50_ms": 1.0})
    assert cache.memo("bench", "k", lambda: {"p50_ms": 2.0}, refresh=True) == ({"p50_ms": 2.0}, False)
    assert cache.memo("bench", "k", lambda: {"p50_ms": 3.0}) == ({"p50_ms": 2.0}, True)


def _dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_opening_a_cache_sweeps_what_killed_runs_left(tmp_path: Path) -> None:
    import os
    import time

    from compressor.cache import _HOST

    Cache(tmp_path)
    dead, alive = _dead_pid(), os.getpid()
    names = {"dead": f"{dead}-abc123@{_HOST}", "alive": f"{alive}-abc123@{_HOST}",
             "legacy_old": "0123456789abcdef0123456789abcdef", "legacy_new": "fedcba9876543210fedcba9876543210",
             "other_host": f"{dead}-abc123@elsewhere"}
    for name in names.values():
        (tmp_path / "tmp" / name).mkdir()
    day_ago = time.time() - 2 * 24 * 3600
    os.utime(tmp_path / "tmp" / names["legacy_old"], (day_ago, day_ago))
    (tmp_path / "memo" / f".metric-k.json.{dead}-ab12.tmp").write_text("{")
    (tmp_path / "memo" / f".metric-j.json.{alive}-ab12.tmp").write_text("{")
    Cache(tmp_path)
    left = sorted(p.name for p in (tmp_path / "tmp").iterdir())
    assert left == sorted([names["alive"], names["legacy_new"], names["other_host"]])
    assert [p.name for p in (tmp_path / "memo").iterdir()] == [f".metric-j.json.{alive}-ab12.tmp"]


def test_temp_names_are_unique_to_the_process_and_call(tmp_path: Path) -> None:
    import os

    from compressor.cache import atomic_write_text, temp_sibling

    a, b = temp_sibling(tmp_path / "results.json"), temp_sibling(tmp_path / "results.json")
    assert a != b and f".{os.getpid()}-" in a.name and a.name.startswith(".results.json.")
    atomic_write_text(tmp_path / "results.json", "{}")
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_default_cache_dir(monkeypatch, tmp_path: Path) -> None:  # noqa: ANN001
    from compressor.cache import default_cache_dir

    monkeypatch.setenv("COMPRESSOR_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("COMPRESSOR_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "compressor"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "compressor"
