"""Which artifacts to measure on which targets, and the speed checks built from the figures.

Every final variant and the reference are measured on every target that can run their format.
The input of each compression step (quantize, prune, optimize) is measured too, so the report can
say whether the step made the model faster on that target, and flag it when it did not.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from compressor.artifact import Artifact
from compressor.errors import CompressorError

if TYPE_CHECKING:
    from compressor.runner import Runner, VariantOutcome

CHECKED_PREFIXES = ("quantize.", "prune.", "optimize.", "distill.")
BENCH_FIELDS = ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "cv", "throughput_per_s", "cold_start_ms", "peak_rss_mb")


class Measurements:
    """Collects benchmark entries per artifact sha for a finished set of variants."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.spec = runner.spec.benchmark

    def artifacts_to_measure(self, outcomes: list[VariantOutcome]) -> list[Artifact]:
        seen: dict[str, Artifact] = {self.runner.reference.sha256: self.runner.reference}
        for o in outcomes:
            for i, entry in enumerate(o.ledger):
                if entry["pass"].startswith(CHECKED_PREFIXES) or self.spec.ledger_steps:
                    seen.setdefault(o.chain[i].sha256, o.chain[i])
            if o.artifact is not None:
                seen.setdefault(o.artifact.sha256, o.artifact)
        return list(seen.values())

    def usable_targets(self) -> tuple[list[Any], list[dict[str, str]]]:
        from backends import get_runtime, parse_target

        usable, skipped = [], []
        for text in self.runner.spec.targets:
            target = parse_target(text)
            runtime = get_runtime(target.runtime)
            if not runtime.is_available():
                skipped.append({"target": text, "reason": f"{target.runtime} is not installed ({runtime.install_hint})"})
            elif target.device not in runtime.available_devices():
                skipped.append({"target": text, "reason": f"no {target.device} device for {target.runtime} on this machine"})
            else:
                usable.append((target, runtime))
        return usable, skipped

    def collect(self, outcomes: list[VariantOutcome]) -> tuple[dict[str, list[dict]], list[dict]]:
        from benchmarks.measure import measure
        from benchmarks.timing import TimingSettings

        targets, skipped = self.usable_targets()
        settings = TimingSettings(self.spec.warmup_runs, self.spec.warmup_seconds, self.spec.min_runs,
                                  self.spec.min_seconds, self.spec.max_seconds)
        samples = self.runner.data.split("evaluation").take(64).inputs
        jobs = [(a, t, rt, b) for a in self.artifacts_to_measure(outcomes) for t, rt in targets
                if rt.can_run(a.format) for b in self.spec.batch_sizes]
        results: dict[str, list[dict]] = {}
        for n, (artifact, target, runtime, batch) in enumerate(jobs, 1):
            self.runner.on_event("bench", index=n, total=len(jobs), target=str(target), batch=batch,
                                 artifact=artifact.id)
            try:
                raw = measure(artifact, target.runtime, target.device, batch, self.spec.threads, settings, samples)
                entry = {k: raw[k] for k in ("runtime", "device", "batch_size", "threads")}
                entry.update({k: round(float(raw[k]), 4) for k in BENCH_FIELDS})
                entry["metric"], _ = self.runner.metric_of(artifact, str(target))
            except CompressorError as exc:
                entry = {"runtime": target.runtime, "device": target.device, "batch_size": batch,
                         "threads": self.spec.threads, "error": str(exc)}
            results.setdefault(artifact.sha256, []).append(entry)
        for o in outcomes:  # each ledger step carries the measurements of the artifact it made
            for i, step in enumerate(o.ledger):
                if o.chain[i + 1].sha256 in results:
                    step["benchmarks"] = results[o.chain[i + 1].sha256]
        return results, skipped


def likely_reason(entry: dict[str, Any]) -> str:
    """A best guess at why a compression step did not speed the model up."""
    from benchmarks.environment import cpu_info

    name, config = entry["pass"], entry.get("config", {})
    coverage = entry.get("coverage") or {}
    if name.startswith("quantize.") and config.get("format") == "qoperator":
        if config.get("activation_type") == "int8":
            return ("QOperator with int8 (signed) activations has no fast x86 kernel in ONNX Runtime "
                    "(it falls back to a slow path); use format: qdq or activation_type: uint8")
        return "QOperator (QLinear*) kernels are slow for this op mix on this CPU; use format: qdq"
    if name == "quantize.onnx.fp16":
        if not cpu_info().get("fp16_arithmetic", False):
            return ("this CPU has no float16 arithmetic, so ONNX Runtime runs float16 graphs through Casts "
                    "and float32 kernels; fp16 pays off on GPUs and fp16-capable ARM / AVX512-FP16 CPUs")
        return "float16 kernels for some of these operators are missing, so Casts to float32 remain"
    if name == "quantize.onnx.weight_only":
        if config.get("accuracy_level", 4) != 4:
            return ("MatMulNBits below accuracy_level 4 unpacks the low-bit weights and multiplies in float32; "
                    "set accuracy_level: 4 for int8 dot products")
        return ("MatMulNBits dequantizes weights block by block; at this batch the unpacking costs more than "
                "the smaller weights save (weight-only pays off when weight memory traffic dominates)")
    share = coverage.get("int8_mac_share")
    if name.startswith("quantize.") and share is not None and share < 0.5:
        largest = ", ".join(f"{f['node']} ({f['op_type']})" for f in coverage.get("float_compute", [])[:3])
        return (f"only {share:.0%} of the MACs run in int8 (largest float compute: {largest or 'none'}); the "
                f"Quantize/Dequantize conversions around the float part cost more than the int8 part saves")
    if name == "quantize.onnx.dynamic":
        return ("dynamic quantization turns Conv into ConvInteger and quantizes activations on every call; "
                "ONNX Runtime's CPU ConvInteger kernel is slow, so use quantize.onnx.static for conv nets "
                "(dynamic pays off for MatMul-heavy models such as transformers)")
    if name.startswith("quantize.") and not cpu_info()["int8_dot_product"]:
        return "this CPU has no int8 dot-product instructions (VNNI/dotprod), so int8 kernels gain little"
    if name == "prune.structured":
        return ("the MACs it removed did not show at this model size and batch: per-op framework overhead "
                "dominates, or the measurement is noisy (see cv); compare the exported ONNX step")
    if name == "prune.magnitude":
        return "unstructured zeros do not skip work in dense kernels; prune.structured removes whole filters"
    if name.startswith("quantize."):
        return "quantize/dequantize overhead outweighs the int8 gain at this model size and batch"
    return "the rewritten graph has no faster kernels on this runtime"


def speed_checks(outcome: VariantOutcome, benches: dict[str, list[dict]]) -> tuple[list[dict], list[str]]:
    """Each compression step's speed-up over its input, per target and batch; warnings when slower."""
    checks, warnings = [], []
    final = {} if outcome.artifact is None else {
        (b["runtime"], b["device"], b["batch_size"]): b for b in benches.get(outcome.artifact.sha256, [])}
    for i, entry in enumerate(outcome.ledger):
        if not entry["pass"].startswith(CHECKED_PREFIXES):
            continue
        parent = {(b["runtime"], b["device"], b["batch_size"]): b for b in benches.get(outcome.chain[i].sha256, [])}
        for b in benches.get(outcome.chain[i + 1].sha256, []):
            p = parent.get((b["runtime"], b["device"], b["batch_size"]))
            if p is None or "p50_ms" not in p or "p50_ms" not in b:
                continue
            speedup = p["p50_ms"] / b["p50_ms"] if b["p50_ms"] else float("inf")
            checks.append({"pass": entry["pass"], "step": i + 1, "target": f"{b['runtime']}:{b['device']}",
                           "batch_size": b["batch_size"], "parent_p50_ms": p["p50_ms"], "p50_ms": b["p50_ms"],
                           "speedup": round(speedup, 3)})
            if speedup >= 0.95 or not entry["pass"].startswith(("quantize.", "prune.")):
                continue
            last = final.get((b["runtime"], b["device"], b["batch_size"]))
            if i + 1 < len(outcome.ledger) and last is not None and p["p50_ms"] / last["p50_ms"] >= 0.95:
                # a later step (e.g. optimize.onnx baking the graph) wins the speed back: the variant
                # is not slower than this step's input, so record it instead of warning
                checks[-1]["recovered_by_later_steps"] = round(p["p50_ms"] / last["p50_ms"], 3)
            else:
                warnings.append(
                    f"slower than its parent: step {i + 1} ({entry['pass']}) runs at {speedup:.2f}x its input's "
                    f"speed on {b['runtime']}:{b['device']} batch {b['batch_size']} (p50 {b['p50_ms']:.3f} ms vs "
                    f"{p['p50_ms']:.3f} ms); likely reason: {likely_reason(entry)}"
                )
    return checks, warnings
