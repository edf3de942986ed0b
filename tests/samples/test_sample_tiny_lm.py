"""The tiny LM sample in its small setting (2 layers, hidden 64, 4 heads on 2 key/value heads, trained for a
few seconds): the pipeline with perplexity, the KV-cache export's parity with torch (prefill, cached decode,
greedy tokens), the generation figures in results.json and the TFLite variant scored on LiteRT."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

pytestmark = pytest.mark.slow

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "tiny_lm"


@pytest.fixture(scope="module")
def small_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from samples.tiny_lm.train import SMALL, train

    folder = tmp_path_factory.mktemp("tiny-lm") / "model"
    record = train(folder, SMALL, log=lambda _msg: None)
    assert record["corpus"]["test_documents"] >= 1 and record["held_out_perplexity"] < SMALL.vocab_size
    for name in ("config.json", "model.safetensors", "tokenizer.json", "train.json"):
        assert (folder / name).is_file(), name
    assert train(folder, SMALL)["train_seconds"] == record["train_seconds"]  # cached: not trained again
    return folder


@pytest.fixture(scope="module")
def small_run(small_lm: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    import yaml

    from compressor import run_pipeline
    from compressor.run.pipeline import parse_pipeline

    raw = yaml.safe_load((SAMPLE / "pipeline.yaml").read_text())
    raw["model"].update(kwargs={"folder": str(small_lm)}, weights=str(small_lm / "model.safetensors"))
    raw["data"]["text"] = {"documents": "samples.tiny_lm.corpus:small_documents",
                           "tokenizer": str(small_lm / "tokenizer.json"), "context_length": 64}
    raw["data"]["evaluation"] = {"split": "test", "limit": 8, "batch_size": 8}
    tflite = yaml.safe_load((SAMPLE / "tflite.yaml").read_text())["variants"]
    raw["variants"] = {**{k: raw["variants"][k] for k in ("fp32", "int4-rtn-b32")}, **tflite}
    raw["targets"] = ["onnxruntime:cpu", "litert:cpu"]
    raw["benchmark"] = {"batch_sizes": [1], "threads": 1, "warmup_runs": 1, "min_runs": 3, "min_seconds": 0.0}
    raw["generation"] = {"prompt_tokens": 24, "new_tokens": 16, "prompts": 2, "agreement_tokens": 16, "timed_rounds": 2}
    out = tmp_path_factory.mktemp("tiny-lm-run")
    return run_pipeline(parse_pipeline(raw, SAMPLE), out), out


def _torch_lm(folder: Path):  # noqa: ANN202 - the sample's TinyLM with its trained weights
    from safetensors.torch import load_file

    from samples.tiny_lm.model import TinyLM

    module = TinyLM(str(folder))
    module.load_state_dict(load_file(str(folder / "model.safetensors")))
    return module.eval()


def test_pipeline_scores_perplexity_and_measures_generation(small_run: tuple[dict, Path]) -> None:
    results, _ = small_run
    v = {x["name"]: x for x in results["variants"]}
    assert all(x["status"] == "ok" for x in v.values()), [x.get("error") for x in v.values()]
    assert results["metric"] == {"name": "perplexity", "higher_is_better": False, "outputs": ["output"]}
    assert v["fp32"]["ledger"][0]["parity"]["max_abs_error"] < 1e-4
    assert v["fp32"]["metric"] == pytest.approx(results["reference"]["metric"], rel=1e-4)
    int4 = v["int4-rtn-b32"]
    assert int4["ledger"][-1]["report"]["matmul_nbits"] > 0
    assert int4["artifact"]["size_bytes"] < v["fp32"]["artifact"]["size_bytes"]
    for name in ("fp32", "int4-rtn-b32"):
        gen = v[name]["generation"]
        (row,) = gen["measurements"]
        assert row["prompt_tokens"] == 24 and row["new_tokens"] == 16 and row["batch_size"] == 1
        assert all(row[k] > 0 for k in ("prefill_ms", "decode_ms_p50", "decode_ms_p90", "tokens_per_s",
                                        "cold_start_ms", "peak_rss_mb"))
        assert 0.0 <= gen["greedy_agreement"] <= 1.0
    assert v["fp32"]["generation"]["identical_to_reference"] is True
    assert v["fp32"]["generation"]["greedy_agreement"] == 1.0
    assert {c["measure"] for c in int4["decode_checks"]} == {"decode_ms_per_token"}
    report = int4["ledger"][-1]["report"]
    assert report["embedding"] == "int4" and report["embedding_error_steps"] <= 1.0  # the token table too


def test_tflite_variant_scored_on_litert_without_generation(small_run: tuple[dict, Path]) -> None:
    results, _ = small_run
    v = {x["name"]: x for x in results["variants"]}
    tfl = v["tflite-fp32"]
    assert tfl["status"] == "ok" and tfl["artifact"]["format"] == "tflite"
    assert tfl["metric"] == pytest.approx(v["fp32"]["metric"], rel=0.02)  # perplexity computed on LiteRT
    assert {b["runtime"] for b in tfl["benchmarks"]} == {"litert"}
    assert "no key/value cache inputs" in tfl["generation"]["skipped"]  # said, not silently missing
    assert tfl["generation"]["measurements"] == [] and "greedy_agreement" not in tfl["generation"]
    from compressor.run.results import exit_code

    assert exit_code(results, strict=False) == 0  # a model without a cache is not a failed measurement


def test_kv_cache_export_matches_torch(small_lm: Path, small_run: tuple[dict, Path]) -> None:
    import onnxruntime as ort
    import torch

    results, out = small_run
    fp32 = next(x for x in results["variants"] if x["name"] == "fp32")
    session = ort.InferenceSession(str(out / fp32["artifact"]["path"]), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    assert names[:2] == ["input_ids", "attention_mask"] and names[2] == "past_key_values.0.key"
    assert session.get_inputs()[2].shape == ["batch", 2, "past_sequence", 16]
    module = _torch_lm(small_lm)
    ids = np.random.default_rng(0).integers(0, 512, (2, 12)).astype(np.int64)
    empty = {n: np.zeros((2, 2, 0, 16), np.float32) for n in names[2:]}
    out_prefill = session.run(None, {"input_ids": ids[:, :9], "attention_mask": np.ones((2, 9), np.int64), **empty})
    with torch.inference_mode():
        full = module(torch.from_numpy(ids), torch.ones(2, 12, dtype=torch.long)).numpy()
    assert np.abs(out_prefill[0] - full[:, :9]).max() < 1e-4  # prefill, batch 2
    past = dict(zip(names[2:], out_prefill[1:]))
    decoded = session.run(None, {"input_ids": ids[:, 9:], "attention_mask": np.ones((2, 12), np.int64), **past})
    assert decoded[1].shape == (2, 2, 12, 16)
    assert np.abs(decoded[0] - full[:, 9:]).max() < 1e-4  # three new tokens after a 9-token cache


def test_greedy_generation_from_onnx_is_the_torch_one(small_lm: Path, small_run: tuple[dict, Path]) -> None:
    import torch

    from backends import get_runtime
    from compressor.artifact import Artifact
    from compressor.formats import Format
    from compressor.frameworks._onnx import onnx_signature
    from compressor.measure.generation import lm_for, open_lm

    results, out = small_run
    path = out / next(x for x in results["variants"] if x["name"] == "fp32")["artifact"]["path"]
    artifact = Artifact(Format.ONNX, path, onnx_signature(path), "-")
    lm = lm_for(open_lm(artifact, get_runtime("onnxruntime")), artifact)
    module = _torch_lm(small_lm)
    prompt = np.random.default_rng(1).integers(0, 512, 20)
    ids = list(prompt)
    with torch.inference_mode():  # torch without a cache: the whole sequence again for every token
        for _ in range(64):
            x = torch.tensor([ids])
            ids.append(int(module(x, torch.ones_like(x))[0, -1].argmax()))
    expected = ids[20:]
    assert len(set(expected)) >= 3  # a generation that is not one token repeated
    assert lm.greedy(prompt, 64) == expected
