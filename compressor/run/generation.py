"""Generation measurements of a language-model pipeline (``generation:`` in the pipeline file).

For the reference and every artifact the run measures (variants and the inputs of compared
steps), on every target that runs its format: greedy decoding at batch 1 with the key/value cache,
timed in a fresh worker process (prefill of one ``prompt_tokens`` prompt, decode ms per token
p50/p90 over ``new_tokens`` tokens, tokens/s, cold start, peak RSS), and the greedy tokens of
``prompts`` held-out prompts, computed here, whose match with the reference's is
``greedy_agreement``. A compressed step that decodes slower than its input is flagged with the
pass's reason, as the speed checks do for the forward pass.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from compressor.artifact import Artifact
from compressor.cache import cache_key
from compressor.errors import CompressorError, ConfigError
from compressor.measure.generation import without_cache
from compressor.metrics import greedy_agreement
from compressor.run.context import RunContext
from compressor.run.measurements import artifacts_to_measure, usable_targets
from compressor.run.step import VariantOutcome

GENERATION_VERSION = 1
GEN_FIELDS = ("prefill_ms", "prefill_p90_ms", "decode_ms_p50", "decode_ms_p90", "tokens_per_s", "cold_start_ms",
              "peak_rss_mb")


def prompts(ctx: RunContext, count: int, length: int) -> np.ndarray:
    """The first ``count`` evaluation samples' first ``length`` tokens (count x length)."""
    ids = ctx.data.split("evaluation", needed_by="generation").inputs.get("input_ids")
    if ids is None or ids.ndim != 2:
        raise ConfigError("generation: needs token ids ('input_ids', samples x tokens) in the evaluation split; "
                          "use data source 'text'.")
    if length > ids.shape[1] or count > len(ids):
        raise ConfigError(
            f"generation: asks for {count} prompts of {length} tokens but the evaluation split has {len(ids)} "
            f"samples of {ids.shape[1]} tokens; lower generation.prompts / prompt_tokens or raise "
            f"data.text.context_length."
        )
    return ids[:count, :length]


def greedy_tokens(ctx: RunContext, artifact: Artifact, batch: np.ndarray, new_tokens: int) -> list[list[int]]:
    """Greedy tokens after each prompt on the artifact's default runtime (memoized in the cache)."""
    from backends import default_runtime
    from compressor.measure.generation import lm_for, open_lm

    def compute() -> list[list[int]]:
        with ctx.trusted():
            session = open_lm(artifact, default_runtime(artifact.format))
            try:
                lm = lm_for(session, artifact)
                return [lm.greedy(p, new_tokens) for p in batch]
            finally:
                session.close()

    key = cache_key("greedy", GENERATION_VERSION, artifact.sha256, batch.tobytes().hex(), new_tokens)
    return ctx.cache.memo("greedy", key, compute)[0]


def _timings(ctx: RunContext, artifact: Artifact, prompt: np.ndarray, remeasure: bool) -> list[dict[str, Any]]:
    from dataclasses import asdict

    from compressor.measure.environment import machine_fingerprint
    from compressor.measure.harness import measure_generation
    from compressor.measure.timing import TimingSettings

    bench, gen = ctx.spec.benchmark, ctx.spec.generation
    settings = TimingSettings(bench.warmup_runs, bench.warmup_seconds, gen.timed_rounds, 0.0, bench.max_seconds)
    targets, _ = usable_targets(ctx.spec.targets)
    rows = []
    for target, runtime in targets:
        if not runtime.can_run(artifact.format):
            continue

        def fresh(target: Any = target) -> dict[str, Any]:
            raw = measure_generation(artifact, target.runtime, target.device, bench.threads, settings, prompt,
                                     gen.new_tokens, trust=ctx.trust)
            row = {k: raw[k] for k in ("runtime", "device", "batch_size", "threads", "prompt_tokens", "new_tokens")}
            row.update({k: round(float(raw[k]), 4) for k in GEN_FIELDS}, tokens=raw["tokens"])
            return row

        key = cache_key("generate", GENERATION_VERSION, artifact.sha256, str(target), bench.threads, asdict(settings),
                        prompt.tobytes().hex(), gen.new_tokens, machine_fingerprint())
        try:
            row, cached = ctx.cache.memo("generate", key, fresh, refresh=remeasure)
            row = {**row, "cached": cached, "p50_ms": row["decode_ms_p50"]}  # p50_ms: the speed checks read it
        except CompressorError as exc:
            row = {"runtime": target.runtime, "device": target.device, "batch_size": 1, "threads": bench.threads,
                   "error": str(exc)}
        rows.append(row)
    return rows


def collect_generation(ctx: RunContext, outcomes: list[VariantOutcome], remeasure: bool = False,
                       timed: bool = True) -> dict[str, dict[str, Any]]:
    """Per artifact sha256: greedy agreement with the reference and (``timed``) the generation timings per target."""
    gen = ctx.spec.generation
    batch = prompts(ctx, gen.prompts, gen.prompt_tokens)
    reference = greedy_tokens(ctx, ctx.reference, batch, gen.agreement_tokens)
    found: dict[str, dict[str, Any]] = {}
    for n, artifact in enumerate(artifacts_to_measure(ctx, outcomes), 1):
        ctx.on_event("stage", message=f"generation {n}: {artifact.id}")
        record: dict[str, Any] = {"prompts": len(batch), "prompt_tokens": gen.prompt_tokens,
                                  "agreement_tokens": gen.agreement_tokens}
        reason = without_cache(artifact)
        if reason:  # a model that cannot decode with a cache (a cache-less TFLite): said, not measured
            found[artifact.sha256] = {**record, "skipped": reason, "measurements": []}
            continue
        try:
            tokens = greedy_tokens(ctx, artifact, batch, gen.agreement_tokens)
            record["greedy_agreement"] = round(float(np.mean([greedy_agreement(t, r) for t, r in zip(tokens, reference)])), 4)
            record["identical_to_reference"] = tokens == reference
        except CompressorError as exc:
            record["error"] = str(exc)
        record["measurements"] = _timings(ctx, artifact, batch[0], remeasure) if timed else []
        found[artifact.sha256] = record
    return found


def decode_checks(outcome: VariantOutcome, found: dict[str, dict[str, Any]],
                  cpu: dict[str, Any]) -> tuple[list[dict], list[str]]:
    """Each compared step's decode speed-up over its input (batch 1, cache on); warnings when slower."""
    from compressor.run.speed import speed_checks

    benches = {sha: [m for m in rec.get("measurements", []) if "p50_ms" in m] for sha, rec in found.items()}
    checks, warnings = speed_checks(outcome, benches, cpu)
    for c in checks:
        c["measure"] = "decode_ms_per_token"
    return checks, [f"decode: {w.replace('p50 ', 'decode p50 ').replace('batch 1', 'batch 1 (one token)')}"
                    for w in warnings]
