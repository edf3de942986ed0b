"""Graph checks the ONNX quantize passes run before any work: what ORT's quantizer would fail on
or silently leave float."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from compressor.errors import PassError
from compressor.passes.quantize._onnx import graph_nodes

# ORT-only ops written by its graph optimizer (levels extended / all): its quantizer reads the ONNX
# domain's ops, so these would stay float (or, for NCHWc layouts, make shape inference fail)
ORT_FUSED_OPS = frozenset({"FusedConv", "FusedGemm", "FusedMatMul", "ReorderInput", "ReorderOutput"})
QUANTIZED_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "ConvInteger",
                           "MatMulInteger", "MatMulNBits", "DynamicQuantizeLinear", "QGemm"})


def check_quantizable_graph(path: Path, pass_name: str) -> None:
    """Refuse, before any work, graphs ORT's quantizer would fail on or leave float: already quantized
    ones, and ones holding ORT's fused or NCHWc-layout ops."""
    nodes = graph_nodes(path)
    quantized = Counter(n.op_type for n in nodes if n.op_type in QUANTIZED_OPS)
    if quantized:
        found = ", ".join(f"{op} x{c}" for op, c in sorted(quantized.items()))
        raise PassError(
            f"pass '{pass_name}': the model is already quantized ({found}); quantizing it again is not "
            f"supported by ONNX Runtime's quantizer; start this variant from the float model."
        )
    fused = Counter(n.op_type if n.domain != "com.microsoft.nchwc" else f"NCHWc {n.op_type}" for n in nodes
                    if n.op_type in ORT_FUSED_OPS or n.domain == "com.microsoft.nchwc")
    if fused:
        found = ", ".join(f"{op} x{c}" for op, c in sorted(fused.items()))
        raise PassError(
            f"pass '{pass_name}': the model holds ONNX Runtime's own fused ops ({found}), written by "
            f"optimize.onnx at level extended or all; ORT's quantizer cannot quantize them (they would "
            f"stay float); optimize with level: basic before quantizing, and again after it."
        )
