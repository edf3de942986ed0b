"""quantize.onnx.fp16: float16 weights and compute, float32 inputs and outputs kept.

Halves the file. Whether it is faster depends on the target: GPUs and CPUs with fp16 arithmetic
(ARM v8.2+, AVX512-FP16) run float16 kernels; other x86 CPUs have none, so ONNX Runtime runs
the graph through Casts and float32 kernels and it is usually slower there (the speed check in
results.json flags it).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from compressor.artifact import Artifact
from compressor.formats import Format
from compressor.passes.base import (
    PassConfig,
    PassContext,
    PassOutput,
    QuantizePass,
)


class Fp16Config(PassConfig):
    """Settings of ``quantize.onnx.fp16``."""

    keep_io_types: bool = Field(True, description="keep float32 model inputs and outputs (Casts inside)")
    keep_float_ops: list[str] = Field(default_factory=list, description="op types kept in float32")
    exclude_nodes: list[str] = Field(default_factory=list, description="node names kept in float32")


class QuantizeOnnxFp16(QuantizePass):
    """Convert an ONNX model's float32 weights and compute to float16 (onnxruntime.transformers)."""

    name = "quantize.onnx.fp16"
    version = 1
    config_class = Fp16Config
    input_formats: ClassVar[frozenset[Format]] = frozenset({Format.ONNX})

    def slow_reason(self, entry: dict[str, Any], cpu: dict[str, Any]) -> str:
        if not cpu.get("fp16_arithmetic", False):
            return ("this CPU has no float16 arithmetic, so ONNX Runtime runs float16 graphs through Casts "
                    "and float32 kernels; fp16 pays off on GPUs and fp16-capable ARM / AVX512-FP16 CPUs")
        return "float16 kernels for some of these operators are missing, so Casts to float32 remain"

    def parity_tolerance(self) -> float | None:
        return None

    def check(self, artifact: Artifact, ctx: PassContext) -> None:
        from compressor.errors import PassError
        from compressor.passes.quantize._onnx import check_node_names, graph_nodes

        super().check(artifact, ctx)
        check_node_names(Path(artifact.path), self.config.exclude_nodes, self.name)
        present = {n.op_type for n in graph_nodes(Path(artifact.path))}
        for op in self.config.keep_float_ops:
            if op not in present:
                raise PassError(
                    f"pass '{self.name}': keep_float_ops names '{op}', which does not occur in the model "
                    f"(present: {', '.join(sorted(present))}); fix keep_float_ops."
                )

    def run(self, artifact: Artifact, ctx: PassContext, out_dir: Path) -> PassOutput:
        from compressor.frameworks._onnx import onnx_signature
        from compressor.passes.quantize._onnx import convert_fp16

        path = out_dir / "model.onnx"
        report = convert_fp16(Path(artifact.path), path, self.config)
        return PassOutput(path=path, signature=onnx_signature(path, artifact.signature.layout), report=report)
