"""What a run folder keeps for the deployment packages built from it later (``compressor package``):
the pipeline that made the run (its file's sha256 and its validated settings) and a few real
evaluation samples, so a package's golden sample needs no data source and runs no code."""
from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import numpy as np

from compressor.cache import atomic_write_bytes
from compressor.run.context import RunContext

SAMPLES_FILE = "evaluation_samples.npz"  # the run folder's few evaluation samples, for golden samples
SAMPLES_KEPT = 16


def provenance(ctx: RunContext) -> dict[str, Any]:
    """The pipeline behind a run: its file and that file's sha256, and its settings as validated."""
    source = ctx.pipeline.source
    digest = hashlib.sha256(source.read_bytes()).hexdigest() if source and source.is_file() else None
    return {"pipeline_file": str(source) if source else None, "pipeline_sha256": digest,
            "pipeline_dir": str(ctx.pipeline.base_dir), "spec": ctx.spec.model_dump(mode="json"),
            "samples_file": SAMPLES_FILE}


def write_samples(out_dir: Path, ctx: RunContext) -> None:
    """The first evaluation samples as fed to the model (``x.<input>``), their labels (``y``), the
    constant inputs (``const.<input>``) and batch axes (``axis.<name>``): plain arrays, no pickle."""
    split = ctx.data.split("evaluation").take(SAMPLES_KEPT)
    arrays = {f"x.{k}": np.ascontiguousarray(v) for k, v in split.inputs.items()}
    if split.labels is not None:
        arrays["y"] = np.asarray(split.labels)
    arrays.update({f"const.{k}": np.asarray(v) for k, v in split.feeding.constants.items()})
    arrays.update({f"axis.{k}": np.asarray(v) for k, v in split.feeding.batch_axes.items()})
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write_bytes(out_dir / SAMPLES_FILE, buffer.getvalue())
