"""Train the tiny Llama-layout LM on the CPython documentation corpus: seeded and cached.

    python -m samples.tiny_lm.train [--out samples/tiny_lm/model] [--small]

Writes a Hugging Face folder (config.json, model.safetensors, tokenizer.json, tokenizer_config.json,
generation_config.json) plus train.json, the record of the settings, corpus and held-out perplexity.
A folder whose train.json holds the same settings and corpus hash is reused, not retrained. The
held-out documents (``TEST_FRACTION`` of them, seed 0) are the pipeline's evaluation split: the
model never trains on them.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODEL_DIR = HERE / "model"
TEST_FRACTION = 0.1
EOS, BOS, UNK = "</s>", "<s>", "<unk>"


@dataclass(frozen=True)
class LMSettings:
    """The model's size and its training; ``FULL`` is the sample, ``SMALL`` the tests' setting."""

    vocab_size: int = 2048
    layers: int = 4
    hidden: int = 256
    heads: int = 4
    kv_heads: int = 2
    intermediate: int = 512
    context_length: int = 128
    batch_size: int = 16
    steps: int = 700
    lr: float = 3e-3
    seed: int = 0
    threads: int = 1
    corpus: str = "samples.tiny_lm.corpus:documents"


FULL = LMSettings()
SMALL = LMSettings(vocab_size=512, layers=2, hidden=64, heads=4, kv_heads=2, intermediate=128, context_length=64,
                   batch_size=8, steps=200, lr=5e-3, threads=1, corpus="samples.tiny_lm.corpus:small_documents")


def train_tokenizer(docs: list[str], vocab_size: int):  # noqa: ANN201 - a tokenizers.Tokenizer
    """Byte-level BPE trained on ``docs`` (deterministic: no sampling in BPE training)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[UNK, BOS, EOS], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(docs, trainer)
    return tok


def llama_config(s: LMSettings, tok) -> object:  # noqa: ANN001 - a tokenizers.Tokenizer
    """The transformers LlamaConfig of settings ``s``."""
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=tok.get_vocab_size(), hidden_size=s.hidden, intermediate_size=s.intermediate,
                       num_hidden_layers=s.layers, num_attention_heads=s.heads, num_key_value_heads=s.kv_heads,
                       max_position_embeddings=1024, rms_norm_eps=1e-5, tie_word_embeddings=False,
                       bos_token_id=tok.token_to_id(BOS), eos_token_id=tok.token_to_id(EOS),
                       pad_token_id=tok.token_to_id(EOS), torch_dtype="float32")


def _batches(chunks, batch_size: int, seed: int):  # noqa: ANN001, ANN202 - numpy in, torch out
    """Endless shuffled batches of chunks: a fresh seeded permutation every epoch."""
    import numpy as np
    import torch

    rng = np.random.default_rng(seed)
    while True:
        order = rng.permutation(len(chunks))
        for start in range(0, len(order) - batch_size + 1, batch_size):
            yield torch.from_numpy(chunks[order[start:start + batch_size]])


def held_out_perplexity(model, chunks, batch_size: int = 16) -> float:  # noqa: ANN001
    """Token-weighted perplexity of ``model`` on (n, context + 1) chunks."""
    import torch

    total, count = 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(chunks), batch_size):
            batch = torch.from_numpy(chunks[start:start + batch_size])
            logits = model(input_ids=batch[:, :-1]).logits
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1),
                                                     reduction="sum")
            total, count = total + float(loss), count + batch[:, 1:].numel()
    return math.exp(total / count)


def unigram_perplexity(train_chunks, test_chunks, vocab: int) -> float:  # noqa: ANN001 - numpy arrays
    """Held-out perplexity of the training tokens' add-one unigram distribution: the level to beat."""
    import numpy as np

    counts = np.bincount(train_chunks[:, 1:].ravel(), minlength=vocab).astype(np.float64) + 1.0
    logp = np.log(counts / counts.sum())
    return math.exp(-float(logp[test_chunks[:, 1:].ravel()].mean()))


def _cpu_seconds() -> float:
    """User + system CPU time of this process so far (threads included)."""
    t = os.times()
    return t.user + t.system


def greedy_samples(model, chunks, prompts: int = 4, prompt_tokens: int = 128,  # noqa: ANN001
                   new_tokens: int = 64) -> list[dict]:
    """Greedy continuations of the first ``prompts`` held-out chunks: the tokens and how many are distinct.

    The prompts are the pipeline's generation prompts (the evaluation split's first samples, cut to
    ``prompt_tokens``): a model that repeats one token shows as ``distinct`` 1.
    """
    import torch

    out = []
    with torch.inference_mode():
        for row in chunks[:prompts]:
            ids = torch.from_numpy(row[:prompt_tokens]).reshape(1, -1)
            gen = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                 max_new_tokens=new_tokens, min_new_tokens=new_tokens)[0, ids.shape[1]:].tolist()
            out.append({"distinct": len(set(gen)), "tokens": gen})
    return out


def _record_matches(out: Path, record: dict) -> bool:
    try:
        old = json.loads((out / "train.json").read_text())
    except (OSError, ValueError):
        return False
    return old.get("settings") == record["settings"] and old.get("corpus") == record["corpus"] \
        and (out / "model.safetensors").is_file()


def train(out: Path = MODEL_DIR, settings: LMSettings = FULL, log=print) -> dict:  # noqa: ANN001
    """Train (or reuse) the model in ``out``; return train.json's record."""
    import torch
    from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

    from compressor.cache import temp_sibling
    from compressor.code import load_attr
    from compressor.data_text import split_documents, token_chunks
    from samples.tiny_lm.corpus import describe

    docs = load_attr(settings.corpus)()
    train_docs, test_docs = split_documents(docs, TEST_FRACTION, settings.seed)
    record = {"settings": asdict(settings), "corpus": {**describe(docs), "test_fraction": TEST_FRACTION,
                                                       "test_documents": len(test_docs)}}
    if _record_matches(out, record):
        return json.loads((out / "train.json").read_text())
    torch.manual_seed(settings.seed)
    torch.set_num_threads(settings.threads)
    tok = train_tokenizer(train_docs, settings.vocab_size)
    eos = tok.token_to_id(EOS)
    train_chunks = token_chunks(train_docs, tok, settings.context_length, eos)
    test_chunks = token_chunks(test_docs, tok, settings.context_length, eos)
    model = LlamaForCausalLM(llama_config(settings, tok))
    optim = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=0.01, betas=(0.9, 0.95))
    warmup = max(1, settings.steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(optim, lambda i: min(1.0, (i + 1) / warmup) * 0.5 * (
        1 + math.cos(math.pi * min(i, settings.steps) / settings.steps)))
    batches, start, cpu0 = _batches(train_chunks, settings.batch_size, settings.seed), time.perf_counter(), _cpu_seconds()
    curve = []  # held-out perplexity on the first 64 test chunks as training goes: shows under/over-fitting
    model.train()
    for step in range(settings.steps):
        batch = next(batches)
        loss = model(input_ids=batch, labels=batch).loss
        optim.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optim.step()
        sched.step()
        if step % 10 == 0 or step == settings.steps - 1:
            log(f"step {step:5d}  loss {float(loss):.3f}  {time.perf_counter() - start:.0f} s")
        if (step + 1) % max(1, settings.steps // 6) == 0:
            model.eval()
            curve.append([step + 1, round(held_out_perplexity(model, test_chunks[:64]), 2)])
            model.train()
            log(f"step {step + 1:5d}  held-out perplexity (64 chunks) {curve[-1][1]}")
    model.eval()
    wall, cpu = time.perf_counter() - start, _cpu_seconds() - cpu0
    samples = greedy_samples(model, test_chunks, prompt_tokens=min(128, settings.context_length))
    record.update(train_seconds=round(wall, 1), train_cpu_seconds=round(cpu, 1),
                  train_seconds_on_idle_cores=round(cpu / settings.threads, 1),
                  train_tokens=int(train_chunks[:, 1:].size),
                  train_chunks=len(train_chunks), test_chunks=len(test_chunks),
                  steps_tokens=settings.steps * settings.batch_size * settings.context_length,
                  held_out_perplexity=round(held_out_perplexity(model, test_chunks), 3),
                  unigram_perplexity=round(unigram_perplexity(train_chunks, test_chunks, tok.get_vocab_size()), 3),
                  parameters=sum(p.numel() for p in model.parameters()), held_out_curve=curve,
                  greedy_distinct_tokens=[g["distinct"] for g in samples],
                  greedy_sample=tok.decode(samples[0]["tokens"]) if samples else "")
    tmp = temp_sibling(out)  # the whole folder appears at once: a killed training leaves no half model
    model.save_pretrained(str(tmp), safe_serialization=True)
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS, unk_token=UNK,
                            pad_token=EOS).save_pretrained(str(tmp))
    (tmp / "train.json").write_text(json.dumps(record, indent=2))
    if out.exists():
        shutil.rmtree(out)
    tmp.replace(out)
    return record


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=MODEL_DIR)
    parser.add_argument("--small", action="store_true", help="the tests' tiny setting")
    parser.add_argument("--steps", type=int, default=None, help="override the number of training steps")
    args = parser.parse_args()
    chosen = SMALL if args.small else FULL
    if args.steps:
        from dataclasses import replace

        chosen = replace(chosen, steps=args.steps)
    print(json.dumps(train(args.out, chosen), indent=2))
