"""convert.ort: ONNX -> ORT format, the file ONNX Runtime Mobile loads."""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field

from compressor.artifact import Artifact
from compressor.formats import Format
from compressor.passes.base import Pass, PassConfig, PassContext, PassOutput


class ConvertOrtConfig(PassConfig):
    """Settings of ``convert.ort``."""

    optimization: Literal["basic", "extended", "all"] = Field(
        "all", description="graph optimizations baked into the file (as onnxruntime's converter tool)"
    )
    target_platform: Literal["arm", "amd64"] = Field(
        "arm", description="amd64 also bakes in the x86-only NCHWc layout; arm keeps the file portable"
    )
    atol: float = Field(1e-4, gt=0, description="max abs error allowed vs the ONNX parent on the parity batch")


class ConvertOrt(Pass):
    """Save the ONNX model in ORT format (optimized offline) and check parity against it."""

    name = "convert.ort"
    version = 1
    config_class = ConvertOrtConfig
    input_formats: ClassVar[frozenset[Format]] = frozenset({Format.ONNX})
    output_format = Format.ORT
    is_conversion = True

    def parity_tolerance(self) -> float | None:
        return self.config.atol

    def run(self, artifact: Artifact, ctx: PassContext, out_dir: Path) -> PassOutput:
        from compressor.frameworks._onnx import ort_signature
        from compressor.passes.convert._onnx import export_ort

        path = out_dir / "model.ort"
        report = export_ort(artifact, self.config, path)
        signature = ort_signature(path, artifact.signature.layout)
        return PassOutput(path=path, signature=signature, report=report,
                          meta={"optimization": self.config.optimization, "target_platform": self.config.target_platform})
