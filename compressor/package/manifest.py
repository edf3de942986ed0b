"""A package's manifest.json: what it holds, said once, with a JSON schema of its own
(``compressor schema --package``). The same facts, less the file list, are written inside the model
(``metadata_props`` of an ONNX file, ``Model.metadata`` of a TFLite file), where ``verify`` compares them."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

MANIFEST = "manifest.json"
KIND = "compressor.package/v1"
METADATA_KEY = "compressor.package"  # the key of the embedded copy, in the model's own metadata
RUNTIME_MODULES = {"onnxruntime": "onnxruntime", "litert": "ai_edge_litert"}  # what run.py imports
RUNTIME_PACKAGES = {"onnxruntime": "onnxruntime", "litert": "ai-edge-litert"}  # what pip installs


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RuntimeInfo(_Strict):
    """The runtime that loads the model, the oldest version it was checked with, and how it runs."""

    name: Literal["onnxruntime", "litert"]
    package: str = Field(description="the pip package of the runtime")
    min_version: str = Field(description="the runtime version the package was built and verified with")
    device: str = "cpu"
    provider: Optional[str] = Field(None, description="ONNX Runtime execution provider")
    delegate: Optional[str] = Field(None, description="LiteRT delegate")
    platform: str = Field("any", description="the CPU family the model is bound to, and why ('any' when none)")


class ModelFile(_Strict):
    """A model file of the package, as the runtime loads it."""

    path: str
    format: Literal["onnx", "ort", "tflite"]
    required_operators: Optional[str] = Field(None, description="the operators config a reduced ONNX Runtime build needs")


class Quantization(_Strict):
    """An integer tensor's float value: (q - zero_point) * scale."""

    scale: float
    zero_point: int


class Tensor(_Strict):
    """One input or output as the model file declares it."""

    name: str
    shape: list[Any] = Field(description="ints, or a name for a symbolic dim ('batch' for the batch)")
    dtype: str
    quantization: Optional[Quantization] = None


class SignatureInfo(_Strict):
    """The model's inputs and outputs and the image layout of its inputs."""

    layout: Literal["NCHW", "NHWC"]
    inputs: list[Tensor]
    outputs: list[Tensor]


class Preprocessing(_Strict):
    """How a raw sample becomes the model's float input: resize, then x * scale + offset, clip, layout."""

    source: str = Field(description="what a raw sample is")
    raw_shape: Optional[list[int]] = Field(None, description="one raw sample's shape (no batch)")
    resize: Optional[list[int]] = Field(None, description="[height, width] after a bilinear, corner-aligned resize")
    scale: float = 1.0
    offset: float = 0.0
    clip: Optional[list[float]] = None
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    dtype: str = "float32"


class MetricInfo(_Strict):
    """The metric on the run's evaluation split, against the input model's."""

    name: str
    value: float
    reference_value: float
    drop: float = Field(description="reference minus variant for higher-is-better metrics (positive = worse)")
    higher_is_better: bool
    evaluation_samples: Optional[int] = None


class BudgetInfo(_Strict):
    """The pipeline's accuracy budget, and whether the packaged variant is within it."""

    max_drop: float
    within_budget: bool


class Latency(_Strict):
    """One measurement of the packaged variant on the target."""

    batch_size: int
    threads: int
    p50_ms: float
    p90_ms: Optional[float] = None
    throughput_per_s: Optional[float] = None


class Provenance(_Strict):
    """Where the package came from: the input model, the pipeline, the variant and the tools."""

    reference_sha256: str
    reference_source: Optional[str] = None
    variant: str
    variant_sha256: str = Field(description="the run's artifact, before its metadata was written")
    pipeline: dict[str, Any] = Field(description="name, file, sha256 and the validated settings")
    selected_by: str = Field(description="why this variant: named, or the fastest within budget")
    tool: dict[str, str]
    libraries: dict[str, str]


class Golden(_Strict):
    """A few real inputs and the outputs this package's model produced, with the tolerance to hold them to."""

    path: str
    samples: int
    atol: float
    rtol: float
    raw_inputs: bool = Field(description="golden inputs are raw samples that run.py preprocesses")


class FileEntry(_Strict):
    """A file of the package with its sha256 and size."""

    path: str
    sha256: str
    size_bytes: int


class PackageManifest(_Strict):
    """manifest.json of a deployment package."""

    kind: Literal["compressor.package/v1"] = KIND
    name: str
    version: str
    created: str
    target: str
    runtime: RuntimeInfo
    models: list[ModelFile] = Field(min_length=1)
    signature: SignatureInfo
    preprocessing: Optional[Preprocessing]
    labels: Optional[list[str]]
    metric: MetricInfo
    budget: BudgetInfo
    latency: list[Latency]
    ledger: list[dict[str, Any]]
    provenance: Provenance
    golden: Golden
    files: list[FileEntry] = Field(description="every file of the package but manifest.json")


def json_schema() -> dict[str, Any]:
    """The manifest's JSON schema (``compressor schema --package``)."""
    schema = PackageManifest.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def embedded_facts(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest less its file list: what the model file holds about itself (it cannot hold its own hash)."""
    return {k: v for k, v in manifest.items() if k != "files"}


def canonical(data: Any) -> str:
    """Sorted, compact JSON: one text for the same facts."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
