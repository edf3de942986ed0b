"""quantize.onnx.static: int8 weights and activations, calibrated on the calibration split.

Calibration streams the split one batch at a time (minmax keeps running ranges; entropy,
percentile and distribution keep running histograms), so memory does not grow with the number
of samples. By default (``nodes: auto``) each compute node's precision is chosen from measurements
on this machine at the pipeline's batch sizes, within the budget (see ``precision.py``); ``nodes:
all`` quantizes every node. With ``fallback: true`` the pass is accuracy-aware: when the int8 model is over the
pipeline's budget, it measures each compute node's sensitivity and keeps the costliest nodes in
float until the model is within budget (see ``fallback.py``); the ledger lists them and why.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from compressor.artifact import Artifact
from compressor.formats import Format
from compressor.passes.base import (
    PassConfig,
    PassContext,
    PassOutput,
    QuantizePass,
)


class StaticQuantConfig(PassConfig):
    """Settings of ``quantize.onnx.static``."""

    calibration: Literal["minmax", "entropy", "percentile", "distribution"] = "minmax"
    percentile: float = Field(99.999, gt=90, le=100, description="with calibration: percentile")
    per_channel: bool = Field(True, description="one scale per output channel of each weight")
    format: Literal["qdq", "qoperator"] = Field(
        "qdq", description="QDQ (Quantize/DequantizeLinear pairs ORT fuses) or QOperator (QLinear* ops)"
    )
    activation_type: Literal["int8", "uint8"] = "uint8"
    weight_type: Literal["int8", "uint8"] = "int8"
    symmetric_activations: bool | None = None
    symmetric_weights: bool = True
    reduce_range: bool = Field(False, description="7-bit weights, for CPUs without VNNI that may saturate")
    op_types: list[str] = Field(default_factory=list, description="op types to quantize (default: all)")
    exclude_nodes: list[str] = Field(default_factory=list, description="node names kept in float")
    preprocess: bool = Field(True, description="run ORT's quant_pre_process (shape inference, fusions) first")
    calibration_batch_size: int = Field(32, ge=1)
    nodes: Literal["auto", "all"] | None = Field(
        None, description="auto (the default unless fallback or min_int8_reduction is set): each compute "
        "node runs in int8 or float as measured fastest on this machine at the pipeline's batch sizes, within "
        "the budget, and the graph is baked so the runtime keeps the choice; all: quantize every node",
    )
    fallback: bool = Field(
        False, description="accuracy-aware: keep the most sensitive nodes in float until within the budget"
    )
    max_fallback_nodes: int | None = Field(None, ge=1, description="with fallback: at most this many float nodes")
    min_int8_reduction: int = Field(
        0, ge=0,
        description="keep in float each ungrouped Conv whose dot products are shorter than this "
        "(in_channels x kh x kw), with the Relu / Clip / MaxPool chain after it: int8 kernels lose to "
        "float on such tiny reductions (a first conv on one gray channel has 9). 0 quantizes every conv. "
        "Pair it with optimize.onnx {level: all, qdq_propagation: false} so ORT keeps that chain in float",
    )

    @model_validator(mode="after")
    def _no_ignored_keys(self) -> StaticQuantConfig:
        self.only_with(("percentile",), self.calibration == "percentile", "calibration: percentile")
        self.only_with(("max_fallback_nodes",), self.fallback, "fallback: true")
        explicit = [k for k, on in (("fallback: true", self.fallback), ("min_int8_reduction",
                    self.min_int8_reduction > 0), ("format: qoperator", self.format == "qoperator")) if on]
        if self.nodes == "auto" and explicit:
            raise ValueError(f"nodes: auto chooses each node's precision itself; it does not go with "
                             f"{explicit[0]} (a fixed choice): drop one of them")
        return self

    def auto_nodes(self) -> bool:
        """Whether each node's precision is chosen from measurements (``nodes: auto``, explicit or default)."""
        if self.nodes is not None:
            return self.nodes == "auto"
        return not self.fallback and self.min_int8_reduction == 0 and self.format == "qdq"


class QuantizeOnnxStatic(QuantizePass):
    """Static int8 quantization through ONNX Runtime's quantizer, fed by the pipeline's data."""

    name = "quantize.onnx.static"
    version = 7  # 4: nodes: auto, the default; 5: no node fallback when it cannot reach the budget;
    # 6: over budget, a knapsack of both-way sensitivities against measured speed costs; the first target's profile;
    # 7: profiles read each node's median kernel time
    config_class = StaticQuantConfig
    input_formats: ClassVar[frozenset[Format]] = frozenset({Format.ONNX})
    data_splits = ("calibration",)

    def reads(self) -> tuple[str, ...]:
        # the fallback search and nodes: auto read the evaluation split and aim at the budget
        return ("calibration", "evaluation") if self.uses_budget() else ("calibration",)

    def uses_budget(self) -> bool:
        return self.config.fallback or self.config.auto_nodes()

    def measures_speed(self) -> bool:
        return self.config.auto_nodes()

    def slow_reason(self, entry: dict[str, Any], cpu: dict[str, Any]) -> str:
        if self.config.format == "qoperator":
            if self.config.activation_type == "int8":
                return ("QOperator with int8 (signed) activations has no fast x86 kernel in ONNX Runtime "
                        "(it falls back to a slow path); use format: qdq or activation_type: uint8")
            return "QOperator (QLinear*) kernels are slow for this op mix on this CPU; use format: qdq"
        return super().slow_reason(entry, cpu)

    def check(self, artifact: Artifact, ctx: PassContext) -> None:
        from compressor.passes.quantize._onnx import check_node_names, check_op_types
        from compressor.passes.quantize._onnx_checks import check_quantizable_graph

        super().check(artifact, ctx)
        check_quantizable_graph(Path(artifact.path), self.name)
        check_op_types(Path(artifact.path), self.config.op_types, self.name)
        check_node_names(Path(artifact.path), self.config.exclude_nodes, self.name)
        from compressor.passes.quantize._onnx import check_calibration_data

        split = ctx.data.split("calibration", needed_by=f"pass '{self.name}'")
        check_calibration_data(split, artifact.signature, self.name)

    def run(self, artifact: Artifact, ctx: PassContext, out_dir: Path) -> PassOutput:
        from compressor.passes.quantize._onnx import StaticQuantizer, compute_nodes

        split = ctx.data.split("calibration", needed_by=f"pass '{self.name}'")
        ctx.say(f"calibrating on {len(split)} samples ({self.config.calibration})")
        path = out_dir / "model.onnx"
        quantizer = StaticQuantizer(Path(artifact.path), split, artifact.signature, self.config, ctx.work_dir, self.name)
        if self.config.auto_nodes():
            return run_auto(artifact, ctx, quantizer, path)
        if not self.config.fallback:
            quantizer.quantize(path)
            return PassOutput(path=path, signature=artifact.signature, report=quantizer.report())
        candidates = [c for c in compute_nodes(quantizer.model_in, self.config.op_types)
                      if c[0] not in self.config.exclude_nodes]
        result = run_fallback(artifact, ctx, quantizer, candidates, self.config.max_fallback_nodes)
        Path(result.model).replace(path)
        report = quantizer.report()
        report["fallback"] = result.report(ctx.max_drop)
        meta = {"float_nodes": [s.node for s in result.float_nodes]}
        return PassOutput(path=path, signature=artifact.signature, meta=meta, report=report)


def run_auto(artifact: Artifact, ctx: PassContext, quantizer: Any, path: Path) -> PassOutput:
    """Wire the ONNX quantizer, the runtime's profiler on the pipeline's first target and the evaluator into
    the neutral per-node choice."""
    from compressor.measure.probe import probe_target
    from compressor.passes.quantize import _onnx_precision as ox
    from compressor.passes.quantize.precision import per_node_precision

    units = ox.graph_units(quantizer.model_in, quantizer.config.op_types, quantizer.config.exclude_nodes)
    nodes_of, lookup = {u.name: u.nodes for u in units}, ox.unit_lookup(quantizer.model_in, units)
    feeds = ox.batch_feeds(quantizer.split, artifact.signature, ctx.batch_sizes)
    where = probe_target(ctx.target, Format.ONNX)
    if where.note:
        ctx.say(where.note)
    trial = iter(range(1_000_000))

    def quantize(float_units: list[str]) -> Path:
        nodes = [n for u in float_units for n in nodes_of[u]]
        return quantizer.quantize(ctx.work_dir / f"auto-{next(trial)}.onnx", nodes)

    result = per_node_precision(
        units, quantizer.model_in, quantize, lambda m: ox.profile_costs(Path(m), feeds, lookup, where),
        lambda m: ox.bake(m, m.with_name(f"{m.stem}-baked.onnx"), where),
        lambda a, b: ox.side_by_side(a, b, feeds, where), scorer(artifact, ctx), ctx.max_drop, say=ctx.say)
    Path(result.model).replace(path)
    report = quantizer.report()
    report["nodes"] = {"mode": "auto", "batch_sizes": list(ctx.batch_sizes), **where.to_dict(), **result.report()}
    meta = {"float_nodes": report["nodes"]["float_nodes"]}
    if result.float_units:
        meta["portable"] = False  # baked for this target: its kernels (and on CPU, this CPU's layouts)
        report["baked"] = ox.bake_level(where)[1]
    return PassOutput(path=path, signature=artifact.signature, meta=meta, report=report)


def scorer(artifact: Artifact, ctx: PassContext) -> Any:
    """score(model path) -> Score: the metric drop vs the reference and the output error vs ``artifact``."""
    import numpy as np

    from compressor.artifact import Artifact as _Artifact
    from compressor.measure.evaluate import flat
    from compressor.passes.quantize.fallback import Score

    evaluator = ctx.evaluator
    parent = evaluator.outputs(artifact)
    parent_out = flat(parent).astype(np.float64)
    reference = ctx.reference_metric if ctx.reference_metric is not None else evaluator.score_outputs(parent)
    scale = float(np.mean(parent_out ** 2)) or 1.0

    def score(path: Path) -> Score:
        candidate = _Artifact(artifact.format, path, artifact.signature, sha256="trial")
        out = evaluator.outputs(candidate)
        drop = evaluator.metric.drop(reference, evaluator.score_outputs(out))
        err = float(np.mean((flat(out).astype(np.float64) - parent_out) ** 2)) / scale
        return Score(drop, err)

    return score


def run_fallback(artifact: Artifact, ctx: PassContext, quantizer: Any, candidates: list, max_nodes: int | None) -> Any:
    """Wire the ONNX quantizer and the pipeline's evaluator into the neutral fallback search."""
    from compressor.passes.quantize.fallback import accuracy_aware_fallback

    trial = iter(range(1_000_000))

    def quantize(float_nodes: list[str]) -> Path:
        return quantizer.quantize(ctx.work_dir / f"trial-{next(trial)}.onnx", float_nodes)

    return accuracy_aware_fallback(candidates, quantize, scorer(artifact, ctx), ctx.max_drop, max_nodes, ctx.say)
