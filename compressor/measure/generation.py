"""Text generation with a key/value cache: greedy tokens, prefill and decode timings.

A language model artifact is opened as a Session with the flat cache signature (ONNX from
``convert.onnx``; a torch causal LM through the torch runtime's ``kv_cache`` option): inputs
``input_ids``, ``attention_mask``, ``past_key_values.N.key/value``; outputs ``logits``, then the
presents in the same order. Decoding is greedy at batch 1. Timings go through the one timing loop
(``compressor.measure.timing.time_loop``): prefill is one call on the whole prompt; a decode sample
is one step of one token, the steps cycling through positions prompt+1 .. prompt+new_tokens, so
p50/p90 cover every cache length of the generation.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from compressor.artifact import PAST, Artifact
from compressor.errors import MeasurementError


def without_cache(artifact: Artifact) -> str | None:
    """Why ``artifact`` cannot generate with a key/value cache, or None when it can."""
    if str(artifact.format) in ("torch", "torch_export") or any(PAST in s.shape for s in artifact.signature.inputs):
        return None
    return (f"the {artifact.format} model has no key/value cache inputs (a '{PAST}' dim), so it cannot be measured "
            f"for generation; export it with convert.onnx (kv_cache: true)")


def open_lm(artifact: Artifact, runtime: Any, device: str = "cpu", threads: int = 1) -> Any:
    """A Session of ``artifact`` with the flat key/value cache signature."""
    if str(artifact.format) in ("torch", "torch_export"):
        return runtime.open(artifact, device=device, threads=threads, kv_cache=True)
    reason = without_cache(artifact)
    if reason:
        raise MeasurementError(f"'{artifact.path}': {reason}.")
    return runtime.open(artifact, device=device, threads=threads)


@dataclass(frozen=True)
class CachedLM:
    """Greedy decoding on an opened Session: prefill a prompt, then one token per step."""

    session: Any
    past_names: list[str]
    empty: list[np.ndarray]  # the cache before the prompt: (1, heads, 0, head_dim) per past input

    def run(self, ids: np.ndarray, past: list[np.ndarray]) -> tuple[int, list[np.ndarray]]:
        """Feed ``ids`` (1 x n) after ``past``; return the greedy next token and the grown cache."""
        total = ids.shape[1] + past[0].shape[2]
        feeds = {"input_ids": ids, "attention_mask": np.ones((1, total), dtype=np.int64)}
        feeds.update(zip(self.past_names, past))
        out = self.session.run(feeds)
        return int(np.argmax(out[0][0, -1])), list(out[1:1 + len(self.past_names)])

    def prefill(self, prompt: np.ndarray) -> tuple[int, list[np.ndarray]]:
        """The first generated token and the cache of the prompt."""
        return self.run(np.asarray(prompt, dtype=np.int64).reshape(1, -1), self.empty)

    def greedy(self, prompt: np.ndarray, new_tokens: int) -> list[int]:
        """``new_tokens`` greedy tokens after ``prompt``."""
        token, past = self.prefill(prompt)
        tokens = [token]
        while len(tokens) < new_tokens:
            token, past = self.run(np.array([[token]], dtype=np.int64), past)
            tokens.append(token)
        return tokens


def lm_for(session: Any, artifact: Artifact) -> CachedLM:
    """A CachedLM on ``session``: past names and empty shapes from the ONNX signature, or from the torch session."""
    specs = [s for s in artifact.signature.inputs if PAST in s.shape]
    if specs:
        names = [s.name for s in specs]
        shapes = [tuple(1 if i == 0 else 0 if d == PAST else int(d) for i, d in enumerate(s.shape)) for s in specs]
    else:  # a torch causal LM opened with kv_cache: the session knows its cache
        names, shapes = list(session.input_names[2:]), list(session.empty_cache_shapes)
    return CachedLM(session, names, [np.zeros(shape, dtype=np.float32) for shape in shapes])


class DecodeStepper:
    """One decode step per call; after ``new_tokens`` tokens it starts again from the prompt's cache."""

    def __init__(self, lm: CachedLM, prompt: np.ndarray, new_tokens: int) -> None:
        self.lm = lm
        self.first, self.prompt_past = lm.prefill(prompt)
        self.new_tokens = max(1, new_tokens)
        self.tokens: list[int] = [self.first]
        self._restart()

    def _restart(self) -> None:
        self.token, self.past, self.done = self.first, self.prompt_past, 0

    def __call__(self) -> None:
        if self.done >= self.new_tokens - 1:
            self._restart()
        self.token, self.past = self.lm.run(np.array([[self.token]], dtype=np.int64), self.past)
        self.done += 1
        if len(self.tokens) < self.new_tokens:
            self.tokens.append(self.token)


def time_generation(lm: CachedLM, prompt: np.ndarray, new_tokens: int, settings: Any) -> dict[str, Any]:
    """Prefill and per-token decode timings (ms) of greedy generation after ``prompt``, batch 1."""
    from dataclasses import replace

    from compressor.measure.timing import time_loop

    prefill = time_loop(lambda: lm.prefill(prompt), replace(settings, min_seconds=0.0))
    stepper = DecodeStepper(lm, prompt, new_tokens)
    steps = max(1, new_tokens - 1)  # the first token comes from the prefill
    decode_settings = replace(settings, min_runs=max(settings.min_runs, steps), min_seconds=0.0,
                              warmup_runs=min(settings.warmup_runs, steps))
    decode = time_loop(stepper, decode_settings)
    return {
        "prompt_tokens": int(prompt.size), "new_tokens": int(new_tokens),
        "prefill_ms": prefill.p50_ms, "prefill_p90_ms": prefill.p90_ms,
        "decode_ms_p50": decode.p50_ms, "decode_ms_p90": decode.p90_ms, "decode_steps_timed": decode.runs,
        "tokens_per_s": 1000.0 / decode.mean_ms if decode.mean_ms else 0.0,
        "p50_ms": decode.p50_ms, "tokens": stepper.tokens,
    }
