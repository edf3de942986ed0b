"""Names that become paths cannot leave their folder; a YAML key given twice is an error, not a silent overwrite."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from compressor.artifact import Artifact, Signature, TensorSpec
from compressor.cache import path_inside
from compressor.errors import ConfigError
from compressor.formats import Format
from compressor.run.pipeline import load_pipeline, parse_pipeline
from compressor.run.results import export_path

ROOT = Path(__file__).resolve().parents[2]
TINY = {"factory": "tests.tiny_models:TinyCNN"}


def _raw(variants: dict, name: str = "tiny") -> dict:
    return {"name": name, "model": dict(TINY), "data": {"source": "digits"}, "variants": variants}


@pytest.mark.parametrize("bad", ["../../../../ESCAPED-variant", "a/b", "a\\b", ".hidden", "..", "x" * 101, "",
                                 "tab\tname", "sp ace", "nul\0"])
def test_unsafe_variant_names_are_refused_where_declared(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_pipeline(_raw({"ok": ["convert.onnx"], bad: ["convert.onnx"]}), tmp_path)
    msg = str(err.value)
    assert "variant name" in msg and repr(bad) in msg and "letters, digits" in msg and "rename" in msg
    assert "\n" not in msg


@pytest.mark.parametrize("good", ["int8-onnx", "fp32_tflite", "v1.2", "a+b", "X" * 100, "0"])
def test_safe_variant_names_are_accepted(tmp_path: Path, good: str) -> None:
    assert list(parse_pipeline(_raw({good: ["convert.onnx"]}), tmp_path).variants) == [good]


@pytest.mark.parametrize("bad", ["../up", "/abs", "runs/x", ".dot"])
def test_unsafe_pipeline_names_are_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ConfigError, match=r"pipeline name .*cannot become a file name"):
        parse_pipeline(_raw({"a": ["convert.onnx"]}, name=bad), tmp_path)


def test_path_inside_refuses_every_way_out(tmp_path: Path) -> None:
    assert path_inside(tmp_path, "artifacts/a.onnx", "variant") == (tmp_path / "artifacts" / "a.onnx").resolve()
    for bad in ("../x", "artifacts/../../x", "/etc/passwd", ".", ""):
        with pytest.raises(ConfigError, match="outside its folder"):
            path_inside(tmp_path, bad, "variant")
    (tmp_path / "inner").mkdir()
    (tmp_path / "inner" / "link").symlink_to(tmp_path.parent)
    with pytest.raises(ConfigError, match="outside its folder"):
        path_inside(tmp_path / "inner", "link/x", "variant")


def test_export_path_refuses_a_name_that_escapes_even_unchecked(tmp_path: Path) -> None:
    model = tmp_path / "m.onnx"
    model.write_bytes(b"x")
    art = Artifact(Format.ONNX, model, Signature((TensorSpec("input", ("batch", 4)),)), "0" * 64)
    assert export_path("int8", art) == "artifacts/int8.onnx"
    for bad in ("../../../../ESCAPED-variant", "a/b", ".."):
        with pytest.raises(ConfigError, match="cannot become a file name"):
            export_path(bad, art)


def test_cli_refuses_an_escaping_variant_and_writes_nothing(tmp_path: Path) -> None:
    pipeline = tmp_path / "deep" / "er" / "pipeline.yaml"
    pipeline.parent.mkdir(parents=True)
    pipeline.write_text(yaml.safe_dump(_raw({"../../ESCAPED-variant": ["convert.onnx"]})))
    out = tmp_path / "deep" / "er" / "out"
    proc = subprocess.run([sys.executable, "-m", "compressor.cli", "run", str(pipeline), "--out", str(out)],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2, proc.stderr[-500:]
    assert "ESCAPED-variant" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not out.exists() and not list(tmp_path.rglob("ESCAPED*"))


DUPLICATE_VARIANT = """\
name: tiny
model:
  factory: tests.tiny_models:TinyCNN
data:
  source: digits
variants:
  fp32-onnx: [convert.onnx]

  int8-onnx: [convert.onnx, quantize.onnx.static]
  dynamic: [convert.onnx, quantize.onnx.dynamic]
  int8-onnx: [convert.onnx]
"""


def test_a_duplicated_variant_names_both_lines(tmp_path: Path) -> None:
    path = tmp_path / "pipeline.yaml"
    path.write_text(DUPLICATE_VARIANT)
    with pytest.raises(ConfigError) as err:
        load_pipeline(path)
    assert str(err.value) == (f"{path} line 11: duplicate key 'int8-onnx' (first at line 9); "
                              f"each key may appear once.")


@pytest.mark.parametrize("text,line,first,key", [
    ("variants:\n  a:\n    - quantize.onnx.static:\n        calibration: minmax\n        calibration: entropy\n",
     5, 4, "calibration"),
    ("variants: {a: [convert.onnx], a: [convert.onnx]}\n", 1, 1, "a"),
    ("name: x\nname: y\n", 2, 1, "name"),
])
def test_duplicate_keys_anywhere_are_refused(tmp_path: Path, text: str, line: int, first: int, key: str) -> None:
    path = tmp_path / "pipeline.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=rf"line {line}: duplicate key '{key}' \(first at line {first}\)"):
        load_pipeline(path)


def test_a_merge_key_may_still_be_overridden(tmp_path: Path) -> None:
    path = tmp_path / "pipeline.yaml"
    path.write_text(
        "name: tiny\nmodel: {factory: 'tests.tiny_models:TinyCNN'}\ndata: {source: digits}\n"
        "variants:\n  a:\n    - convert.onnx\n"
        "    - quantize.onnx.static: &q {calibration: minmax, per_channel: true}\n"
        "  b:\n    - convert.onnx\n    - quantize.onnx.static: {<<: *q, calibration: entropy}\n"
    )
    pipeline = load_pipeline(path)
    assert pipeline.variants["b"][1].config.calibration == "entropy"
    assert pipeline.variants["b"][1].config.per_channel is True
