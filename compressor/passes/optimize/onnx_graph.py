"""optimize.onnx: ONNX Runtime's graph optimizations applied offline and saved."""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field

from compressor.artifact import Artifact
from compressor.formats import Format
from compressor.passes.base import Pass, PassConfig, PassContext, PassOutput


class OptimizeOnnxConfig(PassConfig):
    """Settings of ``optimize.onnx``."""

    level: Literal["basic", "extended", "all"] = Field(
        "extended",
        description="ORT optimization level; 'all' adds layout transforms tied to this CPU "
        "(the file may not run elsewhere)",
    )
    qdq_propagation: bool = Field(
        True,
        description="let ORT move Quantize/Dequantize nodes across MaxPool / Reshape / Transpose; set false "
        "to keep a float conv's chain float (see quantize.onnx.static min_int8_reduction). The saved "
        "graph has ORT's kernels fixed in it, so the setting holds wherever the file is loaded",
    )
    atol: float = Field(1e-4, gt=0, description="max abs error allowed vs the parent")


class OptimizeOnnx(Pass):
    """Constant folding, node fusions and redundant-node removal, written to a new file."""

    name = "optimize.onnx"
    version = 2
    config_class = OptimizeOnnxConfig
    compares_speed = True
    input_formats: ClassVar[frozenset[Format]] = frozenset({Format.ONNX})
    is_conversion = True  # same format, but the graph is rewritten: check parity

    def parity_tolerance(self) -> float | None:
        return self.config.atol

    def run(self, artifact: Artifact, ctx: PassContext, out_dir: Path) -> PassOutput:
        from compressor.frameworks._onnx import ort_optimize

        path = out_dir / "model.onnx"
        disabled = [] if self.config.qdq_propagation else ["QDQPropagationTransformer"]
        ort_optimize(Path(artifact.path), path, self.config.level, disabled)
        meta = {"portable": self.config.level != "all"}
        report = {"disabled_optimizers": disabled} if disabled else {}
        if self.config.level == "all":
            report["portability"] = "ORT CPU kernels and layouts of this machine are fixed in the file (x86 NCHWc)"
        return PassOutput(path=path, signature=artifact.signature, meta=meta, report=report)
