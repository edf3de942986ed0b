"""quantize.onnx.weight_only with 4 bits: the embedding table (Gather) goes to GatherBlockQuantized, checked."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from compressor.errors import ConfigError, PassError
from compressor.passes.registry import build_pass

VOCAB, WIDTH, OUT = 96, 64, 32


def lm_like(path: Path, tied: bool = False, width: int = WIDTH) -> Path:
    """ids -> Gather(embedding) -> MatMul(W) -> logits; ``tied``: the embedding is also the output matrix."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    emb = rng.normal(0, 1, (VOCAB, width)).astype(np.float32)
    inits = [numpy_helper.from_array(emb, "embed.weight")]
    nodes = [helper.make_node("Gather", ["embed.weight", "input_ids"], ["h"], name="embed")]
    if tied:
        nodes.append(helper.make_node("Transpose", ["embed.weight"], ["emb_t"], name="tie", perm=[1, 0]))
        nodes.append(helper.make_node("MatMul", ["h", "emb_t"], ["logits"], name="head"))
    else:
        inits.append(numpy_helper.from_array(rng.normal(0, 0.1, (width, OUT)).astype(np.float32), "head.weight"))
        nodes.append(helper.make_node("MatMul", ["h", "head.weight"], ["logits"], name="head"))
    graph = helper.make_graph(nodes, "lm", [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["b", "s"])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, None)], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.save(model, str(path))
    return path


def quantize(src: Path, out: Path, **config):  # noqa: ANN003, ANN201 - the pass's PassOutput
    from compressor.artifact import Artifact
    from compressor.formats import Format
    from compressor.frameworks._onnx import onnx_signature

    out.mkdir(parents=True, exist_ok=True)
    p = build_pass("quantize.onnx.weight_only", {"algorithm": "rtn", "block_size": 32, **config})
    return p.run(Artifact(Format.ONNX, src, onnx_signature(src), "-"), None, out)


def run(path: Path, ids: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input_ids": ids})[0]


def op_types(path: Path) -> list[str]:
    import onnx

    return [n.op_type for n in onnx.load(str(path)).graph.node]


def test_embedding_goes_to_4_bit_blocks_with_parity(tmp_path: Path) -> None:
    src = lm_like(tmp_path / "lm.onnx")
    before = hashlib.sha256(src.read_bytes()).hexdigest()
    out = quantize(src, tmp_path / "q")
    assert op_types(out.path) == ["GatherBlockQuantized", "MatMulNBits"]
    assert out.report["embedding"] == "int4" and out.report["embedding_tables"] == 1
    assert 0 < out.report["embedding_error_steps"] <= 1.0
    ids = np.arange(VOCAB, dtype=np.int64).reshape(4, -1)
    plain = quantize(src, tmp_path / "plain", quantize_embedding=False)
    assert op_types(plain.path) == ["Gather", "MatMulNBits"] and "embedding" not in plain.report
    ref, got, matmul_only = run(src, ids), run(out.path, ids), run(plain.path, ids)
    # 4-bit blocks of N(0, 1) rows (16 levels): about 5% relative error each for the table and the head
    assert np.linalg.norm(got - matmul_only) / np.linalg.norm(ref) < 0.1
    assert np.linalg.norm(got - ref) / np.linalg.norm(ref) < 0.15
    assert out.path.stat().st_size < 0.5 * plain.path.stat().st_size  # the table was most of the file
    assert hashlib.sha256(src.read_bytes()).hexdigest() == before  # the input model is not modified


def test_a_table_that_cannot_be_quantized_stays_float_and_says_why(tmp_path: Path) -> None:
    tied = quantize(lm_like(tmp_path / "tied.onnx", tied=True), tmp_path / "t")
    assert "Gather" in op_types(tied.path) and tied.report["embedding"] == "float"
    assert "shared with another node" in tied.report["embedding_reason"]
    odd = quantize(lm_like(tmp_path / "odd.onnx", width=48), tmp_path / "o", block_size=32)
    assert odd.report["embedding"] == "float" and "width 48" in odd.report["embedding_reason"]
    with pytest.raises(PassError, match="quantize_embedding: true, but the embedding stays float"):
        quantize(tmp_path / "tied.onnx", tmp_path / "t2", quantize_embedding=True)


def test_embedding_option_needs_4_bits() -> None:
    with pytest.raises(ConfigError, match="quantize_embedding"):
        build_pass("quantize.onnx.weight_only", {"bits": 8, "quantize_embedding": True})
