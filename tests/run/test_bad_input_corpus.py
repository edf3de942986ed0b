"""A corpus of bad inputs, each through the real CLI: exit 2, one line on stderr, no traceback, nothing written.

Each case builds its input in a fresh folder and returns the command line; the run folder it names
(``out``) must not receive results, artifacts or reports.
"""
from __future__ import annotations

import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import pipeline_dict

ROOT = Path(__file__).resolve().parents[2]
Case = Callable[[Path, Path], list[str]]
CASES: dict[str, Case] = {}


def case(name: str) -> Callable[[Case], Case]:
    def register(fn: Case) -> Case:
        CASES[name] = fn
        return fn
    return register


def _pipe(tmp: Path, raw: object) -> list[str]:
    (tmp / "p.yaml").write_text(raw if isinstance(raw, str) else yaml.safe_dump(raw, sort_keys=False))
    return ["run", str(tmp / "p.yaml"), "--out", str(tmp / "out")]


def _with(weights: Path, tmp: Path, variants: dict | None = None, **changes: object) -> list[str]:
    raw = pipeline_dict(weights, {"a": ["convert.onnx"]} if variants is None else variants)
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            raw[section] = {**raw[section], field: value}
        else:
            raw[section] = value
    return _pipe(tmp, raw)


def _model_file(tmp: Path, name: str, content: bytes) -> list[str]:
    """A pipeline on the model file ``name``, with a first pass that takes its format (none for .tflite)."""
    (tmp / name).write_bytes(content)
    first = {".onnx": ["optimize.onnx"], ".h5": ["convert.onnx"], ".keras": ["convert.onnx"]}.get(Path(name).suffix, [])
    return _pipe(tmp, {"name": "x", "model": {"path": str(tmp / name)}, "data": {"source": "digits"},
                       "variants": {"a": first}})


# ---------------------------------------------------------------- the pipeline file
case("pipeline file missing")(lambda t, w: ["run", str(t / "nope.yaml"), "--out", str(t / "out")])
case("yaml syntax error")(lambda t, w: _pipe(t, "name: [unclosed\nmodel: {"))
case("top level is a list")(lambda t, w: _pipe(t, "- a\n- b\n"))
case("unknown top-level key")(lambda t, w: _with(w, t, modle={"factory": "x:y"}))
case("missing model")(lambda t, w: _pipe(t, {"name": "x", "data": {"source": "digits"}, "variants": {"a": ["convert.onnx"]}}))
case("unknown pass")(lambda t, w: _with(w, t, {"a": ["convert.onnx", "quantize.onnx.statc"]}))
case("misspelled pass key")(lambda t, w: _with(w, t, {"a": ["convert.onnx", {"quantize.onnx.static": {"per_chanel": True}}]}))
case("pass value of the wrong type")(lambda t, w: _with(w, t, {"a": [{"prune.magnitude": {"sparsity": "high"}}]}))
case("pass value out of range")(lambda t, w: _with(w, t, {"a": [{"prune.magnitude": {"sparsity": 1.5}}]}))
case("percentile without percentile calibration")(
    lambda t, w: _with(w, t, {"a": ["convert.onnx", {"quantize.onnx.static": {"percentile": 99.0}}]}))
case("max_fallback_nodes without fallback")(
    lambda t, w: _with(w, t, {"a": ["convert.onnx", {"quantize.onnx.static": {"max_fallback_nodes": 2}}]}))
case("lr without fine-tuning")(lambda t, w: _with(w, t, {"a": [{"prune.magnitude": {"lr": 0.1}}]}))
case("int8_io without int8")(lambda t, w: _with(w, t, {"a": [{"convert.tflite": {"int8_io": True}}]}))
case("student and width together")(
    lambda t, w: _with(w, t, {"a": [{"distill.kd": {"student": "tests.tiny_models:TinyCNN", "width": 0.5}}]}))
case("impossible format chain")(lambda t, w: _with(w, t, {"a": ["quantize.onnx.static"]}))
case("tflite pass after onnx")(lambda t, w: _with(w, t, {"a": ["convert.onnx", "convert.tflite"]}))
case("step with two passes")(lambda t, w: _with(w, t, {"a": [{"convert.onnx": {}, "optimize.onnx": {}}]}))
case("step that is a number")(lambda t, w: _with(w, t, {"a": [3]}))
case("no variants")(lambda t, w: _with(w, t, {}))
case("unknown metric")(lambda t, w: _with(w, t, metric="acuracy"))
case("unknown runtime")(lambda t, w: _with(w, t, targets=["onnxrt:cpu"]))
case("unknown device")(lambda t, w: _with(w, t, targets=["onnxruntime:tpu"]))
case("batch size 0")(lambda t, w: _with(w, t, benchmark__batch_sizes=[0]))
case("zero threads")(lambda t, w: _with(w, t, benchmark__threads=0))
case("negative budget")(lambda t, w: _with(w, t, budget={"max_drop": -0.1}))
case("two data sources")(lambda t, w: _with(w, t, data={"source": "digits", "npz": "d.npz"}))
case("unknown data source")(lambda t, w: _with(w, t, data={"source": "imagenet"}))
case("npz file missing")(lambda t, w: _with(w, t, data={"npz": str(t / "missing.npz")}))
case("unknown split name")(lambda t, w: _with(w, t, data={"source": "digits", "calibration": {"split": "validation"}}))
case("unknown --variant")(lambda t, w: [*_with(w, t), "--variant", "b"])


@case("npz without x")
def _npz_without_x(t: Path, w: Path) -> list[str]:
    np.savez(t / "d.npz", y=np.arange(10))
    return _with(w, t, data={"npz": str(t / "d.npz")})


def _npz(t: Path, w: Path, x: np.ndarray, y: np.ndarray | None = None, **changes: object) -> list[str]:
    np.savez(t / "d.npz", x=x, **({} if y is None else {"y": y}))
    data = {"npz": str(t / "d.npz"), **changes.pop("data", {})}
    return _with(w, t, data=data, **changes)


DIGITS = np.random.default_rng(4).random((40, 1, 8, 8), dtype=np.float32)
LABELS = np.arange(40) % 10
case("NaN in the inputs")(lambda t, w: _npz(t, w, np.where(DIGITS > 0.99, np.nan, DIGITS), LABELS))
case("inf in the inputs")(lambda t, w: _npz(t, w, np.where(DIGITS > 0.99, np.inf, DIGITS), LABELS))
case("strings as inputs")(lambda t, w: _npz(t, w, np.array([f"img{i}" for i in range(40)]), LABELS))
case("labels outside the classes")(lambda t, w: _npz(t, w, DIGITS, LABELS + 5))
case("negative labels")(lambda t, w: _npz(t, w, DIGITS, LABELS - 3))
case("labels stored as floats")(lambda t, w: _npz(t, w, DIGITS, LABELS.astype(np.float32)))
case("labels with fractions")(lambda t, w: _npz(t, w, DIGITS, LABELS + 0.5))
case("calibration limit above the data")(
    lambda t, w: _npz(t, w, DIGITS, LABELS, data={"calibration": {"split": "train", "limit": 500}}))
case("a budget above 1 for accuracy")(lambda t, w: _with(w, t, budget={"max_drop": 1.5}))
case("constants for an input the model lacks")(
    lambda t, w: _with(w, t, data={"source": "digits", "constants": {"sample_rate": 16000}}))
case("metric output that does not exist")(lambda t, w: _with(w, t, metric={"name": "cosine", "outputs": ["nope"]}))


def _module_case(t: Path, w: Path, source: str, **changes: object) -> list[str]:
    module = f"usermodel_{abs(hash(source)) % 10**8}"  # one module name per case: the cases share a process
    (t / f"{module}.py").write_text("import torch\nfrom torch import nn\n" + source)
    return _with(w, t, model={"factory": f"{module}:Net"}, **changes)


case("a factory that raises")(
    lambda t, w: _module_case(t, w, "def Net():\n    raise RuntimeError('needs a GPU')\n"))
case("factory kwargs that do not fit")(
    lambda t, w: _with(w, t, model={"factory": "tests.tiny_models:TinyCNN", "kwargs": {"widht": 8}}))
case("a reference that outputs zeros")(lambda t, w: _module_case(
    t, w, "class Net(nn.Module):\n    def forward(self, x):\n        return torch.zeros(x.shape[0], 10) * x.sum()\n",
    metric="cosine"))
case("accuracy of a model with two outputs")(lambda t, w: _module_case(
    t, w, "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
          "        self.fc = nn.Linear(64, 10)\n    def forward(self, x):\n"
          "        y = self.fc(x.flatten(1))\n        return y, y * 2\n"))


# ---------------------------------------------------------------- the model
case("model path missing")(lambda t, w: _pipe(t, {"name": "x", "model": {"path": str(t / "m.onnx")},
                                                  "data": {"source": "digits"}, "variants": {"a": ["optimize.onnx"]}}))
case("model suffix unknown")(lambda t, w: _model_file(t, "m.bin", b"\0" * 64))
case("random bytes as .onnx")(lambda t, w: _model_file(t, "m.onnx", np.random.default_rng(0).bytes(4000)))
case("empty .onnx")(lambda t, w: _model_file(t, "m.onnx", b""))
case("random bytes as .tflite")(lambda t, w: _model_file(t, "m.tflite", np.random.default_rng(1).bytes(4000)))
case("random bytes as .h5")(lambda t, w: _model_file(t, "m.h5", np.random.default_rng(2).bytes(4000)))
case("path and factory together")(lambda t, w: _with(w, t, model={"path": "m.onnx", "factory": "a:b"}))
case("factory module missing")(lambda t, w: _with(w, t, model={"factory": "no_such_module:Net"}))
case("factory name missing")(lambda t, w: _with(w, t, model={"factory": "tests.tiny_models:NoSuchNet"}))
case("factory without a colon")(lambda t, w: _with(w, t, model={"factory": "tests.tiny_models.TinyCNN"}))
case("weights file missing")(lambda t, w: _with(w, t, model={"factory": "tests.tiny_models:TinyCNN",
                                                               "weights": str(t / "none.safetensors")}))
case("weights of another model")(lambda t, w: _with(w, t, model={"factory": "tests.tiny_models:BlockMLP",
                                                                    "weights": str(w)}))


@case("junk .keras archive")
def _junk_keras(t: Path, w: Path) -> list[str]:
    with zipfile.ZipFile(t / "m.keras", "w") as z:
        z.writestr("config.json", "{not json")
    return _pipe(t, {"name": "x", "model": {"path": str(t / "m.keras")}, "data": {"source": "digits"},
                     "variants": {"a": ["convert.onnx"]}})


@case("folder that is no model")
def _no_model_folder(t: Path, w: Path) -> list[str]:
    (t / "folder").mkdir()
    return _pipe(t, {"name": "x", "model": {"path": str(t / "folder")}, "data": {"source": "digits"},
                     "variants": {"a": ["convert.onnx"]}})


# ---------------------------------------------------------------- trust and names
case("variant name leaving the run folder")(lambda t, w: _with(w, t, {"../../ESCAPED": ["convert.onnx"]}))
case("variant name with a slash")(lambda t, w: _with(w, t, {"a/b": ["convert.onnx"]}))
case("pipeline name leaving runs/")(lambda t, w: _with(w, t, name="../../up"))
case("duplicate variant")(lambda t, w: _pipe(t, "name: x\nmodel: {factory: 'tests.tiny_models:TinyCNN'}\n"
                                             "data: {source: digits}\nvariants:\n  a: [convert.onnx]\n  a: [convert.onnx]\n"))
case("duplicate pass key")(lambda t, w: _pipe(t, "name: x\nmodel: {factory: 'tests.tiny_models:TinyCNN'}\n"
                                              "data: {source: digits}\nvariants:\n"
                                              "  a: [{prune.magnitude: {sparsity: 0.5, sparsity: 0.9}}]\n"))


@case("model folder naming os:system")
def _untrusted_folder(t: Path, w: Path) -> list[str]:
    from tests.run.test_trust import evil_folder

    folder = evil_folder(t)
    return _pipe(t, {"name": "x", "model": {"path": str(folder)}, "data": {"source": "digits"},
                     "variants": {"a": ["convert.onnx"]}})


@case("inspect a model folder naming os:system")
def _inspect_untrusted(t: Path, w: Path) -> list[str]:
    from tests.run.test_trust import evil_folder

    return ["inspect", str(evil_folder(t))]


@case("bench a model folder naming os:system")
def _bench_untrusted(t: Path, w: Path) -> list[str]:
    from tests.run.test_trust import evil_folder

    return ["bench", str(evil_folder(t)), "--runtime", "torch:cpu"]


# ---------------------------------------------------------------- refused by a pass before any work
case("a second variant refused at its first step")(
    lambda t, w: _with(w, t, {"a": ["convert.onnx"], "b": [{"prune.structured": {"include": ["nope*"]}}]}))
case("fp16 tflite from torch")(lambda t, w: _with(w, t, {"a": [{"convert.tflite": {"quantize": "fp16"}}]}))
case("prune include matching nothing")(lambda t, w: _with(w, t, {"a": [{"prune.magnitude": {"include": ["nope*"]}}]}))


# ---------------------------------------------------------------- the run folder
@case("--out is a file")
def _out_file(t: Path, w: Path) -> list[str]:
    args = _with(w, t)
    (t / "out").write_text("x")
    return args


case("--out cannot be created")(lambda t, w: [*_with(w, t)[:-1], "/proc/compressor-out"])

# ---------------------------------------------------------------- bench, inspect, report
ONNX_SAMPLE = ROOT / "samples" / "keras_mnist" / "model.h5"
case("bench batch 0")(lambda t, w: ["bench", str(ONNX_SAMPLE), "--batch", "0"])
case("bench batch not a number")(lambda t, w: ["bench", str(ONNX_SAMPLE), "--batch", "1,x"])
case("bench runtime that cannot run the format")(lambda t, w: ["bench", str(ONNX_SAMPLE), "--runtime", "litert:cpu"])
case("bench unknown runtime")(lambda t, w: ["bench", str(ONNX_SAMPLE), "--runtime", "tvm:cpu"])
case("bench missing file")(lambda t, w: ["bench", str(t / "m.onnx")])
case("inspect missing file")(lambda t, w: ["inspect", str(t / "m.onnx")])
case("inspect unknown suffix")(lambda t, w: (t / "m.pkl").write_bytes(b"x") and ["inspect", str(t / "m.pkl")])
case("inspect random bytes as .onnx")(
    lambda t, w: (t / "m.onnx").write_bytes(np.random.default_rng(3).bytes(999)) and ["inspect", str(t / "m.onnx")])
case("report of a folder without results")(lambda t, w: ["report", str(t)])
case("report of a truncated results.json")(
    lambda t, w: (t / "results.json").write_text('{"schema": 1, "variants": [') and ["report", str(t)])
case("report of a foreign json")(lambda t, w: (t / "results.json").write_text("[1, 2]") and ["report", str(t)])


def _written(out: Path) -> list[str]:
    """Files a refused command left in the run folder: a lock file, or work kept in a cache, is not output."""
    if not out.is_dir():
        return []
    return [str(p.relative_to(out)) for p in out.rglob("*")
            if p.is_file() and p.name != ".lock" and p.relative_to(out).parts[0] != "cache"]


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(name: str, tmp_path: Path, tiny_weights: Path,
                                                         monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from compressor.cli import main

    work = tmp_path / "case"
    work.mkdir()
    argv = CASES[name](work, tiny_weights)
    monkeypatch.chdir(work)
    monkeypatch.setattr(sys, "argv", ["compressor", *argv])
    with pytest.raises(SystemExit) as stop:
        main()
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert stop.value.code == 2, f"exit {stop.value.code}\n{captured.err}\n{captured.out[-2000:]}"
    assert "Traceback" not in captured.err + captured.out
    assert len(lines) == 1 and lines[0].startswith("error:"), captured.err
    assert not lines[0].rstrip().endswith(".."), lines[0]
    if "--out" in argv and (work / "out").is_dir():
        assert _written(work / "out") == []
    assert not (work / "PWNED").exists()  # no code named by a model file ran


def test_the_corpus_is_large() -> None:
    assert len(CASES) >= 60
