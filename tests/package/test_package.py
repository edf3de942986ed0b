"""Packages of the digits int8 ONNX and int8 TFLite variants: built at the end of a run, verified,
their facts readable inside the model by onnx / onnxruntime and a stock TFLite flatbuffer reader,
their OCI layout readable by skopeo, and the CLI's package / verify / schema --package."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from compressor.package.manifest import METADATA_KEY, embedded_facts, json_schema
from compressor.package.verify import verify_package

ROOT = Path(__file__).resolve().parents[2]


def _manifest(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "manifest.json").read_text())


def test_run_leaves_one_verified_package_per_target(packaged_run: tuple[Path, dict[str, Any]]) -> None:
    out, results = packaged_run
    records = {p["target"]: p for p in results["packages"]}
    assert set(records) == {"onnxruntime:cpu", "litert:cpu"}
    assert records["onnxruntime:cpu"]["variant"] == "int8-onnx" and records["litert:cpu"]["variant"] == "int8-tflite"
    on_disk = json.loads((out / "results.json").read_text())["packages"]
    assert on_disk == results["packages"]
    for record in records.values():
        assert "fastest within budget" in record["selected_by"]
        for key in ("path", "zip", "oci"):
            assert verify_package(out / record[key]) == [], key


def test_manifest_says_what_the_package_holds(packages: dict[str, Path], packaged_run: tuple[Path, dict[str, Any]]) -> None:
    import jsonschema

    results = packaged_run[1]
    variants = {v["name"]: v for v in results["variants"]}
    for target, folder in packages.items():
        manifest = _manifest(folder)
        jsonschema.validate(manifest, json_schema())  # the schema 'compressor schema --package' prints
        variant = variants[manifest["provenance"]["variant"]]
        assert manifest["runtime"]["name"] == target.partition(":")[0]
        assert manifest["metric"]["value"] == variant["metric"] and manifest["budget"]["within_budget"]
        assert [row["batch_size"] for row in manifest["latency"]] == [1]
        assert manifest["provenance"]["reference_sha256"] == results["reference"]["sha256"]
        assert manifest["provenance"]["variant_sha256"] == variant["artifact"]["sha256"]
        assert [e["pass"] for e in manifest["ledger"]] == variant["passes"]
        assert manifest["labels"] == [str(d) for d in range(10)]
        assert manifest["preprocessing"]["resize"] == [28, 28] and manifest["preprocessing"]["scale"] == 1 / 16
        listed = {f["path"] for f in manifest["files"]}
        assert listed == {p.name for p in folder.iterdir()} - {"manifest.json"}
        with np.load(folder / "golden.npz", allow_pickle=False) as golden:
            assert golden["raw.%s" % manifest["signature"]["inputs"][0]["name"]].shape == (4, 1, 8, 8)
            assert len(golden["label"]) == manifest["golden"]["samples"] == 4
    onnx_manifest = _manifest(packages["onnxruntime:cpu"])
    assert [m["format"] for m in onnx_manifest["models"]] == ["onnx", "ort"]
    import onnx

    onnx_file = next(f for f in packages["onnxruntime:cpu"].iterdir() if f.suffix == ".onnx")
    bound = any(n.domain == "com.microsoft.nchwc" for n in onnx.load(str(onnx_file)).graph.node)
    # nodes: auto bakes at ORT level all, which on x86 may lay float convs out as NCHWc: x86-only then
    assert onnx_manifest["runtime"]["platform"] == ("x86_64 (NCHWc nodes from an x86 optimization)" if bound else "any")
    assert onnx_manifest["signature"]["inputs"][0]["shape"][0] == "batch"  # symbolic batch
    config = (packages["onnxruntime:cpu"] / "required_operators.config").read_text()
    assert "ai.onnx;" in config and "QuantizeLinear" in config
    tflite_manifest = _manifest(packages["litert:cpu"])
    tensors = tflite_manifest["signature"]["inputs"] + tflite_manifest["signature"]["outputs"]
    assert all(t["dtype"] == "int8" and t["quantization"]["scale"] > 0 for t in tensors)


def test_onnx_metadata_reads_back_with_onnx_and_onnxruntime(packages: dict[str, Path]) -> None:
    import onnx
    import onnxruntime as ort

    folder = packages["onnxruntime:cpu"]
    expected = embedded_facts(_manifest(folder))
    props = {p.key: p.value for p in onnx.load(str(folder / "model.onnx")).metadata_props}
    assert json.loads(props[METADATA_KEY]) == expected
    assert props["version"] == "1.0.0" and props["labels"] == "0,1,2,3,4,5,6,7,8,9"
    session = ort.InferenceSession(str(folder / "model.ort"), providers=["CPUExecutionProvider"])
    assert json.loads(session.get_modelmeta().custom_metadata_map[METADATA_KEY]) == expected


def test_tflite_metadata_reads_back_with_a_stock_flatbuffer_reader(packages: dict[str, Path]) -> None:
    import tflite  # the PyPI 'tflite' package: flatbuffer classes generated from TFLite's schema

    folder = packages["litert:cpu"]
    model = tflite.Model.GetRootAsModel((folder / "model.tflite").read_bytes(), 0)
    entries = {model.Metadata(i).Name().decode(): model.Metadata(i).Buffer() for i in range(model.MetadataLength())}
    data = model.Buffers(entries[METADATA_KEY]).DataAsNumpy().tobytes()
    assert json.loads(data) == embedded_facts(_manifest(folder))
    assert b"digits-cnn-int8-tflite 1.0.0" in model.Description()
    assert "min_runtime_version" in entries  # the converter's own metadata is kept


def test_skopeo_reads_the_oci_layout(packaged_run: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    out, results = packaged_run
    if shutil.which("skopeo") is None:
        pytest.fail("skopeo is not installed: apt-get install skopeo (make test does it)")
    layout = out / next(p["oci"] for p in results["packages"] if p["target"] == "litert:cpu")
    raw = subprocess.run(["skopeo", "inspect", "--raw", f"oci:{layout}:1.0.0"], capture_output=True, text=True, check=True)
    manifest = json.loads(raw.stdout)
    assert manifest["artifactType"] == "application/vnd.cncf.model.manifest.v1+json"
    assert manifest["config"]["mediaType"] == "application/vnd.cncf.model.config.v1+json"
    types = {layer["annotations"]["org.cncf.model.filepath"]: layer["mediaType"] for layer in manifest["layers"]}
    assert types["model.tflite"] == "application/vnd.cncf.model.weight.v1.raw"
    assert types["run.py"] == "application/vnd.cncf.model.code.v1.raw"
    config = subprocess.run(["skopeo", "inspect", "--config", "--raw", f"oci:{layout}:1.0.0"], capture_output=True,
                            text=True, check=True)
    assert json.loads(config.stdout)["descriptor"]["name"] == "digits-cnn-int8-tflite"
    # skopeo copies it (checking every blob's digest), as it would push it to a registry
    subprocess.run(["skopeo", "copy", "-q", f"oci:{layout}:1.0.0", f"oci:{tmp_path / 'copy'}:1.0.0"], check=True)
    assert verify_package(tmp_path / "copy") == []


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "compressor.cli", *args], capture_output=True, text=True, cwd=ROOT)


def test_cli_package_verify_and_schema(packaged_run: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from compressor.cli import app

    out = packaged_run[0]
    made = _cli("package", str(out), "--variant", "int8-tflite", "--out", str(tmp_path / "pkg"), "--zip", "--version", "2.0.0")
    assert made.returncode == 0, made.stderr
    assert _manifest(tmp_path / "pkg")["version"] == "2.0.0"
    runner = CliRunner()
    ok = runner.invoke(app, ["verify", str(tmp_path / "pkg.zip")])
    assert ok.exit_code == 0 and "holds" in ok.stdout, ok.output
    (tmp_path / "pkg" / "notes.txt").write_text("x")
    bad = runner.invoke(app, ["verify", str(tmp_path / "pkg")])
    assert bad.exit_code == 1 and bad.stderr.strip() == "FAIL notes.txt: unlisted: not in the manifest's file list"
    schema = json.loads(runner.invoke(app, ["schema", "--package"]).stdout)
    assert {"runtime", "signature", "golden", "files"} <= set(schema["properties"])
    refused = _cli("package", str(tmp_path), "--variant", "int8-onnx", "--out", str(tmp_path / "x"))
    assert refused.returncode == 2 and "has no results.json" in refused.stderr and "Traceback" not in refused.stderr


def test_platform_is_any_unless_the_graph_holds_x86_only_nodes(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    from compressor.package._onnx import platform

    def write(name: str, node) -> Path:  # noqa: ANN001 - an onnx NodeProto
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 4, 4])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 4, 4])
        path = tmp_path / name
        onnx.save(helper.make_model(helper.make_graph([node], "g", [x], [y])), str(path))
        return path

    assert platform(write("plain.onnx", helper.make_node("Relu", ["x"], ["y"]))) == "any"
    nchwc = helper.make_node("ReorderInput", ["x"], ["y"], domain="com.microsoft.nchwc")
    assert platform(write("nchwc.onnx", nchwc)).startswith("x86_64")
