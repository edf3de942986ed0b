"""A Keras file with Python code in it (a Lambda layer) is refused before any layer is deserialized.

The model config is read as JSON and walked, so the layout of the JSON (compact or pretty-printed)
does not matter; the loaders then run in safe mode as a second guard.
"""
from __future__ import annotations

import json
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path
from typing import Any

import pytest

from compressor.artifact import BATCH, Artifact, Signature, TensorSpec, content_sha256
from compressor.errors import ModelLoadError
from compressor.formats import Format
from compressor.frameworks._tf import code_in_config

ROOT = Path(__file__).resolve().parents[2]
CASES = [("tf_keras", ".h5"), ("keras3", ".h5"), ("keras3", ".keras")]
SIGNATURE = Signature((TensorSpec("x", (BATCH, 4), "float32"),), (TensorSpec("output", (BATCH, 2), "float32"),),
                      "NHWC")


def _keras(generation: str) -> Any:
    from compressor.frameworks._tf import quiet_tensorflow

    quiet_tensorflow()
    if generation == "keras3":
        import keras
        return keras
    import tf_keras
    return tf_keras


def _rewrite_config(path: Path, layout: str) -> None:
    """Store the file's model config as compact (no spaces) or pretty-printed JSON, same content."""
    dump = (lambda c: json.dumps(c, separators=(",", ":"))) if layout == "compact" else (lambda c: json.dumps(c, indent=2))
    if path.suffix == ".h5":
        import h5py

        with h5py.File(path, "r+") as fh:
            raw = fh.attrs["model_config"]
            fh.attrs["model_config"] = dump(json.loads(raw.decode() if isinstance(raw, bytes) else raw))
        return
    with zipfile.ZipFile(path) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    members["config.json"] = dump(json.loads(members["config.json"])).encode()
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str, str, bool], Path]:
    """(generation, suffix, layout, with_lambda) -> a tiny Keras file; the Lambda touches MARKER when it runs."""
    pytest.importorskip("tensorflow")
    root = tmp_path_factory.mktemp("keras-lambda")
    marker = str(root / "MARKER")
    out = {}
    for generation, suffix in CASES:
        k = _keras(generation)
        for with_lambda in (True, False):
            middle = ([k.layers.Lambda(lambda x, p=marker: (open(p, "w").close(), x)[1], name="evil")]
                      if with_lambda else [k.layers.Dense(3, name="plain")])
            model = k.Sequential([k.Input((4,), name="x"), *middle, k.layers.Dense(2, name="out")])
            for layout in ("compact", "pretty"):
                path = root / f"{generation}-{layout}-{'lambda' if with_lambda else 'clean'}{suffix}"
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # "HDF5 is legacy": the legacy file is the point
                    model.save(str(path))
                _rewrite_config(path, layout)
                out[(generation, suffix, layout, with_lambda)] = path
    (root / "MARKER").unlink(missing_ok=True)  # building the model ran the lambda once; loading must not
    return out


@pytest.fixture()
def no_loader(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Both generations' load_model record a call instead of loading: a refusal must come before them."""
    calls: list[str] = []
    keras, tf_keras = _keras("keras3"), _keras("tf_keras")
    monkeypatch.setattr(keras.saving, "load_model", lambda *a, **k: calls.append("keras"))
    monkeypatch.setattr(tf_keras.models, "load_model", lambda *a, **k: calls.append("tf_keras"))
    return calls


def _refused(path: Path) -> Any:
    return pytest.raises(ModelLoadError, match=rf"Keras model '.*{path.name}' has layer 'evil' holding Python code")


@pytest.mark.parametrize("layout", ["compact", "pretty"])
@pytest.mark.parametrize("generation,suffix", CASES)
def test_lambda_is_refused_on_import_inspect_and_open(models: dict, no_loader: list[str], tmp_path: Path,
                                                      generation: str, suffix: str, layout: str) -> None:
    from backends import get_runtime
    from compressor.cache import Cache
    from compressor.frameworks.importing import import_file
    from compressor.frameworks.inspecting import inspect_model

    path = models[(generation, suffix, layout, True)]
    with _refused(path):
        import_file(path, Cache(tmp_path / "cache"))
    with _refused(path):
        inspect_model(path)
    art = Artifact(Format.KERAS, path, SIGNATURE, content_sha256(path), meta={"keras": generation})
    with _refused(path):
        get_runtime("tensorflow").open(art)
    assert no_loader == [] and not (path.parent / "MARKER").exists()


@pytest.mark.parametrize("layout", ["compact", "pretty"])
@pytest.mark.parametrize("generation,suffix", CASES)
def test_models_without_code_still_load(models: dict, tmp_path: Path, generation: str, suffix: str, layout: str) -> None:
    from compressor.cache import Cache
    from compressor.frameworks.importing import import_file

    art = import_file(models[(generation, suffix, layout, False)], Cache(tmp_path / "cache"))
    assert art.signature.outputs[0].shape == (BATCH, 2) and art.meta["keras"] == generation


def test_cli_inspect_of_a_compact_h5_with_a_lambda_exits_2(models: dict) -> None:
    path = models[("tf_keras", ".h5", "compact", True)]
    proc = subprocess.run([sys.executable, "-m", "compressor.cli", "inspect", str(path)], capture_output=True,
                          text=True, cwd=ROOT)
    assert proc.returncode == 2, proc.stderr[-500:]
    assert "layer 'evil' holding Python code" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (path.parent / "MARKER").exists()


@pytest.mark.parametrize("config,layer", [
    ({"class_name": "Functional", "config": {"name": "outer", "layers": [
        {"class_name": "Sequential", "config": {"name": "inner", "layers": [
            {"class_name": "Lambda", "config": {"name": "deep"}}]}}]}}, "deep"),
    ({"class_name": "TimeDistributed", "config": {"name": "td", "layer": {
        "class_name": "Lambda", "config": {"name": "wrapped"}}}}, "wrapped"),
    ({"class_name": "Dense", "config": {"name": "act", "activation": {
        "class_name": "__lambda__", "config": {"code": "AAAA"}}}}, "act"),
    ({"class_name": "Custom", "config": {"name": "marshal", "function": ["4wEAAA==", None, None],
                                          "function_type": "lambda"}}, "marshal"),
    ({"class_name": "Custom", "config": {"name": "raw", "fn": {"__bytecode__": "AAAA"}}}, "raw"),
    ({"class_name": "Sequential", "config": {"name": "s", "layers": [
        {"class_name": "Dense", "config": {"name": "d", "activation": "relu"}}]}}, None),
])
def test_the_config_walk_finds_code_anywhere(config: dict, layer: str | None) -> None:
    assert code_in_config(config) == layer
