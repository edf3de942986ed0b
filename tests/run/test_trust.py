"""A model folder from elsewhere makes the tool import or call nothing unless the user says --trust-code.

Code the user's pipeline names (model.factory, a distillation student) is theirs: the folders a run
writes record it and load as before, in the run and in its measurement worker.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from compressor.artifact import BATCH, Artifact, Signature, TensorSpec, content_sha256
from compressor.code import TrustPolicy, current_trust, load_recorded, trusting
from compressor.errors import MeasurementError, ModelLoadError, UntrustedCodeError
from compressor.formats import Format

ROOT = Path(__file__).resolve().parents[2]
TINY = "tests.tiny_models:TinyCNN"
SIGNATURE = Signature((TensorSpec("input", (BATCH, 1, 8, 8)),), (TensorSpec("output", (BATCH, 10)),))


def evil_folder(tmp_path: Path, factory: str = "os:system", **kwargs: object) -> Path:
    """A torch model folder whose model.json names ``factory`` (by default: a shell command that leaves a marker)."""
    from safetensors.numpy import save_file

    folder = tmp_path / "downloaded"
    folder.mkdir()
    marker = tmp_path / "PWNED"
    desc = {"factory": factory, "kwargs": kwargs or {"command": f"touch '{marker}'"}}
    (folder / "model.json").write_text(json.dumps(desc))
    save_file({"fc.weight": np.zeros((10, 128), np.float32)}, str(folder / "weights.safetensors"))
    return folder


def tiny_folder(tmp_path: Path) -> Path:
    """A genuine torch model folder of TinyCNN, as a run writes it."""
    import torch

    from compressor.frameworks._torch import save_module
    from tests.tiny_models import TinyCNN

    torch.manual_seed(0)
    return save_module(TinyCNN(), TINY, {}, tmp_path / "tiny")


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "compressor.cli", *args], capture_output=True, text=True, cwd=ROOT)


def test_a_folder_naming_os_system_is_refused_and_nothing_runs(tmp_path: Path) -> None:
    from compressor.frameworks._torch import load_module

    folder = evil_folder(tmp_path)
    with pytest.raises(UntrustedCodeError) as err:
        load_module(folder)
    assert str(err.value) == (
        f"model folder '{folder}' names code 'os:system' (its model.json factory); compressor runs code from a "
        f"model file only with --trust-code: pass it if you trust this folder."
    )
    assert isinstance(err.value, ModelLoadError)
    assert not (tmp_path / "PWNED").exists()


def test_a_refused_factory_module_is_not_even_imported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from compressor.frameworks._torch import load_module

    (tmp_path / "h1_side_effect_on_import.py").write_text(
        f"open({str(tmp_path / 'IMPORTED')!r}, 'w').close()\ndef build():\n    raise SystemExit('called')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    folder = evil_folder(tmp_path, "h1_side_effect_on_import:build", x=1)
    with pytest.raises(UntrustedCodeError, match="h1_side_effect_on_import:build"):
        load_module(folder)
    assert not (tmp_path / "IMPORTED").exists() and "h1_side_effect_on_import" not in sys.modules


def test_named_or_trusted_code_loads_and_the_policy_does_not_leak(tmp_path: Path) -> None:
    from compressor.frameworks._torch import load_module

    folder = tiny_folder(tmp_path)
    with pytest.raises(UntrustedCodeError):
        load_module(folder)  # no policy in force: nothing is trusted
    assert load_module(folder, TrustPolicy.of([TINY])).fc.out_features == 10
    with trusting(TrustPolicy(trust_all=True)):
        assert load_module(folder).fc.out_features == 10
    with trusting(TrustPolicy.of(["tests.tiny_models:TinyMLP"])):
        with pytest.raises(UntrustedCodeError, match="TinyCNN"):
            load_module(folder)
    assert current_trust() == TrustPolicy()
    assert TrustPolicy.from_dict(TrustPolicy.of([TINY, None]).to_dict()) == TrustPolicy.of([TINY])
    with pytest.raises(UntrustedCodeError, match="'os:getcwd'"):
        load_recorded("os:getcwd", f"model folder '{folder}'", "its model.json factory")


def test_inspect_and_the_distill_teacher_check_trust_too(tmp_path: Path) -> None:
    from compressor.frameworks.inspecting import inspect_model
    from compressor.passes.distill._torch import teacher_factory

    folder = evil_folder(tmp_path)
    with pytest.raises(UntrustedCodeError, match="os:system"):
        inspect_model(folder)
    teacher = Artifact(Format.TORCH, folder, SIGNATURE, content_sha256(folder))
    with pytest.raises(UntrustedCodeError, match="os:system"):
        teacher_factory(teacher)  # distill.kd width: reads the teacher's factory to scale it
    pt2 = tmp_path / "m.pt2"
    pt2.write_bytes(b"x")
    exported = Artifact(Format.TORCH_EXPORT, pt2, SIGNATURE, "0" * 64, meta={"source_factory": "os:system"})
    with pytest.raises(UntrustedCodeError, match="recorded source factory"):
        teacher_factory(exported)
    assert not (tmp_path / "PWNED").exists()


def test_post_load_steps_stay_a_fixed_name_table(tmp_path: Path) -> None:
    from compressor.frameworks._torch import apply_dynamic, load_module
    from tests.tiny_models import TinyMLP

    folder = tiny_folder(tmp_path)
    desc = json.loads((folder / "model.json").read_text())
    desc["post_load"] = [{"name": "os:system", "kwargs": {"command": "true"}}]
    (folder / "model.json").write_text(json.dumps(desc))
    with pytest.raises(ModelLoadError, match="post-load step 'os:system'; known: quantize_dynamic"):
        load_module(folder, TrustPolicy.of([TINY]))
    with pytest.raises(ModelLoadError, match=r"\['Module'\].*layers: Linear"):
        apply_dynamic(TinyMLP(), ["Module"])
    with pytest.raises(ModelLoadError, match=r"\['load'\]"):
        apply_dynamic(TinyMLP(), ["Linear"], dtype="load")


def test_the_measurement_worker_loads_under_the_callers_policy(tmp_path: Path) -> None:
    from compressor.measure.harness import measure, random_samples
    from compressor.measure.timing import TimingSettings

    folder = tiny_folder(tmp_path)
    art = Artifact(Format.TORCH, folder, SIGNATURE, content_sha256(folder))
    settings = TimingSettings(warmup_runs=1, warmup_seconds=0.0, min_runs=2, min_seconds=0.0)
    samples = random_samples(art, n=4)
    with pytest.raises(MeasurementError, match="--trust-code"):
        measure(art, "torch", "cpu", 1, 1, settings, samples)  # nothing trusted here: nothing trusted there
    assert measure(art, "torch", "cpu", 1, 1, settings, samples, trust=TrustPolicy.of([TINY]))["p50_ms"] > 0
    with trusting(TrustPolicy(trust_all=True)):
        assert measure(art, "torch", "cpu", 1, 1, settings, samples)["p50_ms"] > 0


def test_a_run_loads_its_own_folders_in_steps_and_measurements(tmp_path: Path, tiny_weights: Path) -> None:
    from compressor.run import run_pipeline
    from compressor.run.pipeline import parse_pipeline
    from tests.conftest import pipeline_dict

    raw = pipeline_dict(tiny_weights, {"pruned": [{"prune.magnitude": {"sparsity": 0.5}}]}, targets=["torch:cpu"])
    raw["benchmark"].update(batch_sizes=[1], min_runs=2, warmup_runs=1)
    results = run_pipeline(parse_pipeline(raw, tmp_path), tmp_path / "out")
    (variant,) = results["variants"]
    assert variant["status"] == "ok", variant.get("error")
    assert variant["benchmarks"] and "error" not in variant["benchmarks"][0], variant["benchmarks"]
    assert current_trust() == TrustPolicy()


def _refused_on_the_cli(proc: subprocess.CompletedProcess, tmp_path: Path) -> None:
    assert proc.returncode == 2, proc.stdout[-500:] + proc.stderr[-500:]
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert not (tmp_path / "PWNED").exists()


def test_cli_inspect_refuses_a_folder_naming_code(tmp_path: Path) -> None:
    folder = evil_folder(tmp_path)
    proc = cli("inspect", str(folder))
    _refused_on_the_cli(proc, tmp_path)
    assert "names code 'os:system'" in proc.stderr and "--trust-code" in proc.stderr


def test_cli_inspect_with_trust_code_loads_a_folder(tmp_path: Path) -> None:
    folder = tiny_folder(tmp_path)
    assert cli("inspect", str(folder)).returncode == 2
    proc = cli("inspect", str(folder), "--trust-code", "--json")
    assert proc.returncode == 0, proc.stderr[-500:]
    assert json.loads(proc.stdout)["layers"]["Linear"] == 1


def test_cli_bench_and_run_refuse_a_folder_naming_code(tmp_path: Path) -> None:
    import yaml

    folder = evil_folder(tmp_path)
    _refused_on_the_cli(cli("bench", str(folder), "--runtime", "torch:cpu", "--min-runs", "1"), tmp_path)
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(yaml.safe_dump({"name": "evil", "model": {"path": str(folder)}, "data": {"source": "digits"},
                                        "variants": {"a": []}, "targets": ["torch:cpu"]}))
    out = tmp_path / "out"
    _refused_on_the_cli(cli("run", str(pipeline), "--out", str(out), "--no-bench"), tmp_path)
    assert not (out / "results.json").exists()
