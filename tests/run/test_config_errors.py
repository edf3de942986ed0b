"""Bad input: each a CompressorError with one line naming the value and the fix; CLI exit 2."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from compressor.errors import (
    CompressorError,
    ConfigError,
    FormatChainError,
    ModelLoadError,
)
from compressor.run.pipeline import json_schema, load_pipeline, parse_pipeline
from tests.conftest import pipeline_dict, write_pipeline


def _parse(tmp_path: Path, raw: dict) -> None:
    parse_pipeline(raw, tmp_path)


def test_unknown_pass_name_suggests_the_closest(tmp_path, tiny_weights) -> None:
    with pytest.raises(ConfigError, match=r"unknown pass 'quantize\.onnx\.statc'.*Did you mean 'quantize\.onnx\.static'"):
        _parse(tmp_path, pipeline_dict(tiny_weights, {"a": ["convert.onnx", "quantize.onnx.statc"]}))


def test_misspelled_config_key_names_the_known_keys(tmp_path, tiny_weights) -> None:
    raw = pipeline_dict(tiny_weights, {"a": ["convert.onnx", {"quantize.onnx.static": {"per_chanel": True}}]})
    with pytest.raises(ConfigError) as err:
        _parse(tmp_path, raw)
    msg = str(err.value)
    assert "per_chanel" in msg and "Did you mean 'per_channel'" in msg and "variant 'a' step 2" in msg


def test_bad_config_value_names_the_value(tmp_path, tiny_weights) -> None:
    raw = pipeline_dict(tiny_weights, {"a": [{"prune.magnitude": {"sparsity": 1.5}}]})
    with pytest.raises(ConfigError, match=r"sparsity.*1\.5"):
        _parse(tmp_path, raw)


def test_impossible_format_chain_is_refused_before_work(tmp_path, tiny_weights) -> None:
    raw = pipeline_dict(tiny_weights, {"a": ["quantize.onnx.static"]})
    with pytest.raises(FormatChainError, match=r"cannot take a model in format 'torch'.*put convert\.onnx before it"):
        _parse(tmp_path, raw)
    raw = pipeline_dict(tiny_weights, {"b": ["convert.onnx", "prune.magnitude"]})
    with pytest.raises(FormatChainError, match=r"variant 'b' step 2: pass 'prune\.magnitude' cannot take a model in format 'onnx'.*no conversion pass"):
        _parse(tmp_path, raw)


def test_misspelled_top_level_key(tmp_path, tiny_weights) -> None:
    raw = pipeline_dict(tiny_weights, {"a": ["convert.onnx"]})
    raw["budjet"] = raw.pop("budget")
    with pytest.raises(ConfigError, match=r"unknown key 'budjet'.*Did you mean 'budget'"):
        _parse(tmp_path, raw)


def test_unknown_target_and_metric(tmp_path, tiny_weights) -> None:
    with pytest.raises(ConfigError, match=r"unknown runtime 'onnxrt'"):
        _parse(tmp_path, pipeline_dict(tiny_weights, {"a": ["convert.onnx"]}, targets=["onnxrt:cpu"]))
    with pytest.raises(ConfigError, match=r"has no device 'tpu'"):
        _parse(tmp_path, pipeline_dict(tiny_weights, {"a": ["convert.onnx"]}, targets=["onnxruntime:tpu"]))
    with pytest.raises(ConfigError, match=r"unknown metric 'acuracy'.*Did you mean 'accuracy'"):
        _parse(tmp_path, pipeline_dict(tiny_weights, {"a": ["convert.onnx"]}, metric="acuracy"))


def test_missing_model_file(tmp_path) -> None:
    raw = {"name": "x", "model": {"path": "nope.onnx"}, "data": {"source": "digits"}, "variants": {"a": ["optimize.onnx"]}}
    with pytest.raises(ModelLoadError, match=r"'.*nope\.onnx' does not exist"):
        _parse(tmp_path, raw)


def test_missing_pipeline_file_and_bad_yaml(tmp_path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_pipeline(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_pipeline(bad)


def test_schema_lists_the_sections() -> None:
    schema = json_schema()
    assert {"model", "data", "variants", "targets", "benchmark", "budget"} <= set(schema["properties"])


def test_errors_are_one_line(tmp_path, tiny_weights) -> None:
    raw = pipeline_dict(tiny_weights, {"a": ["convert.onnx", {"quantize.onnx.static": {"calibraton": "entropy"}}]})
    with pytest.raises(CompressorError) as err:
        _parse(tmp_path, raw)
    assert "\n" not in str(err.value)


def test_cli_bad_input_exits_2_without_traceback(tmp_path, tiny_weights) -> None:
    path = write_pipeline(tmp_path, pipeline_dict(tiny_weights, {"a": ["convert.onnx", "quantize.onnx.statc"]}))
    proc = subprocess.run([sys.executable, "-m", "compressor.cli", "run", str(path), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "quantize.onnx.statc" in proc.stderr and "Did you mean" in proc.stderr
    assert not (tmp_path / "o").exists()  # nothing written for a config error
