"""quantize.onnx.weight_only with block_size / algorithm auto (the default when neither is set): the
candidates, the config's explicit cases, and the pass end to end on a tiny MatMul model."""
from __future__ import annotations

from pathlib import Path

import pytest

from compressor.passes.quantize._onnx_weight_auto import candidates
from compressor.passes.registry import build_pass
from compressor.run.step import apply_pass
from tests.conftest import train_tiny
from tests.pass_context import make_context


def config(**raw):
    return build_pass("quantize.onnx.weight_only", raw).config


def test_auto_is_the_default_and_an_explicit_key_keeps_todays_settings() -> None:
    auto = build_pass("quantize.onnx.weight_only")
    assert auto.config.auto() and auto.measures_speed() and auto.uses_budget()
    assert auto.reads() == ("calibration", "evaluation")
    for raw, fixed in (({"block_size": 64}, (64, "default")), ({"algorithm": "rtn"}, (32, "rtn")),
                       ({"algorithm": "gptq", "block_size": 32}, (32, "gptq"))):
        p = build_pass("quantize.onnx.weight_only", raw)
        assert not p.config.auto() and not p.measures_speed() and not p.uses_budget()
        assert (p.config.fixed().block_size, p.config.fixed().algorithm) == fixed
    assert build_pass("quantize.onnx.weight_only", {"bits": 8, "block_size": 32}).reads() == ()
    assert config(block_size="auto", algorithm="hqq").auto() and config(algorithm="auto", block_size=64).auto()


def test_candidates_fit_every_k_and_gptq_only_when_named() -> None:
    # K 384 and 64: a block must divide both; rtn (and gptq) also need an even number of blocks
    assert candidates(config(), [384, 64]) == [("rtn", 32), ("hqq", 32), ("hqq", 64)]
    assert candidates(config(algorithm="gptq", block_size="auto"), [384]) == [("gptq", 32), ("gptq", 64)]
    assert candidates(config(algorithm="auto", block_size=128), [384]) == [("hqq", 128)]
    assert candidates(config(), [48]) == [("rtn", 32)]  # nothing fits: the smallest block, ORT pads


@pytest.fixture(scope="module")
def seq_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tiny(tmp_path_factory.mktemp("seq") / "seq.safetensors", factory="tests.tiny_models:SeqMLP", epochs=2)


def test_auto_scores_and_profiles_every_candidate_and_keeps_one_within_budget(tmp_path: Path, seq_weights: Path) -> None:
    import onnx

    r = make_context(tmp_path, seq_weights, "tests.tiny_models:SeqMLP", benchmark={"batch_sizes": [1, 8], "threads": 1})
    art = apply_pass(r, r.reference, build_pass("convert.onnx"), "a", 0).artifact
    step = apply_pass(r, art, build_pass("quantize.onnx.weight_only"), "a", 1)
    auto = step.entry["report"]["auto"]
    assert auto["mode"] == "auto" and auto["measured_on"] == "onnxruntime:cpu"
    tried = {(c["algorithm"], c["block_size"]) for c in auto["candidates"]}
    assert tried >= {("rtn", 32), ("hqq", 32), ("hqq", 64)}  # K = 64: rtn 64 would leave one block
    for c in auto["candidates"]:
        assert c["status"] == "ok" and set(c["profile_total_us"]) == {"1", "8"} and c["time_share_of_float"] > 0
        assert c["within_budget"] == (c["drop"] <= r.budget.absolute(r.reference_metric))
    chosen = next(c for c in auto["candidates"] if c["candidate"] == auto["chosen"])
    assert chosen["within_budget"] and step.entry["within_budget"]
    fits = [c for c in auto["candidates"] if c["within_budget"] and not c["candidate"].endswith("-mixed")]
    if "remeasured" not in auto:  # one candidate within budget: it is the fastest by its profile
        assert chosen == min(fits, key=lambda c: c["time_share_of_float"])
    assert [m["node"] for m in auto["matmuls"]] and all(set(m["float_us"]) == set(m["low_bit_us"]) == {"1", "8"}
                                                      for m in auto["matmuls"])
    nbits = [n for n in onnx.load(str(step.artifact.path)).graph.node if n.op_type == "MatMulNBits"]
    assert len(nbits) == 2 - len(auto["float_matmuls"])
    assert all(dict((a.name, a.i) for a in n.attribute)["block_size"] == auto["block_size"] for n in nbits)


def test_choose_the_fastest_within_budget_or_near_the_most_accurate() -> None:
    from compressor.passes.quantize._onnx_weight_auto import choose

    rows = [{"candidate": "a", "drop": 0.002, "time_share_of_float": 0.9}, {"candidate": "b", "drop": 0.008,
            "time_share_of_float": 0.7}, {"candidate": "c", "drop": 0.03, "time_share_of_float": 0.5}]
    best, fits = choose(rows, 0.01)
    assert best["candidate"] == "b" and [r["candidate"] for r in fits] == ["b", "a"]  # c is faster but over budget
    best, fits = choose(rows, 0.001)  # none within: a is the most accurate and alone within half the budget of it
    assert best["candidate"] == "a" and fits == []
    best, _ = choose(rows, 0.014)  # within budget: b (fastest of a, b)
    assert best["candidate"] == "b"
    best, fits = choose([{**r, "drop": r["drop"] + 0.02} for r in rows], 0.014)  # none within; a, b near the best
    assert best["candidate"] == "b" and fits == []
