"""The MiniLM workload of ``benchmarks.structured_pruning``: heads and MLP width pruned, then distilled.

all-MiniLM-L6-v2 (``samples/minilm``) goes through one pipeline step, ``distill.kd`` with ``width: 0.5``
and ``heads: 1/3``: the model declares no width kwargs, so the student is a pruned copy of the teacher
(Torch-Pruning, as ``prune.structured``): half of every MLP's hidden width and a third of the attention
heads of every layer removed (the residual width, which is the embedding, stays), channels and heads
ranked by ``importance: hessian`` (how far removing one moves the embeddings, from a few batches),
and every narrowed output projection refitted by least squares to the original's outputs
(``reconstruct``, the pass's default). It is then distilled from the unpruned model: 1 - cosine of the embeddings plus the MSE of every
layer's hidden states (``features``), on sentences of 6-40 words from the CPython documentation corpus
(``samples/tiny_lm/corpus.py``) and the sample's 240 topic sentences, at most 64 tokens, batched by
length (``trim_padding``). A seeded share of those sentences is held out (the pipeline's test split).

Judged on the held-out sentences at their full length (up to 128 tokens): cosine to the original
embeddings; and by the topic accuracy of ``samples/minilm`` on its 240 sentences. Timed in ONNX at
batch 1 and 8 x 128 tokens beside the original, fp32 and with dynamic int8 (``quantize.onnx.dynamic``'s
settings) on top. The step's result stays in the pipeline cache (``--cache``), so a second run only
measures.
"""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SENTENCE = re.compile(r"(?<=[.!?])\s+")
TRAIN_TOKENS = 64  # sequence length the distillation trains at (evaluation: the sentences' own, up to 128)
HELD_OUT = 0.08  # share of the distillation sentences held out for the cosine
LAYERS = 6


EXTRA_PACKAGES = ("numpy", "scipy", "sklearn", "transformers", "torch")  # docstrings for --extra-sentences


def sentences_of(docs: list[str]) -> list[str]:
    """Plain English sentences (6-40 words, at least 70% words) of ``docs``, deduplicated, sorted."""
    found: set[str] = set()
    for doc in docs:
        for s in SENTENCE.split(" ".join(doc.split())):
            words = s.split()
            if 6 <= len(words) <= 40 and sum(w.isalpha() for w in words) >= 0.7 * len(words):
                found.add(s)
    return sorted(found)


@lru_cache(maxsize=4)
def corpus_sentences(limit: int, seed: int = 0) -> tuple[str, ...]:
    """Sentences of the CPython documentation corpus (``samples/tiny_lm/corpus.py``), a seeded sample."""
    from samples.tiny_lm.corpus import documents

    ordered = sentences_of(documents())
    rng = np.random.default_rng(seed)
    return tuple(ordered[i] for i in rng.permutation(len(ordered))[:limit])


def package_sentences(limit: int, avoid: set[str], seed: int = 0) -> list[str]:
    """Sentences of the docstrings of a few installed packages (``EXTRA_PACKAGES``, read with ``ast``, nothing
    imported), none of them in ``avoid``: more text to distil on, a seeded sample."""
    import importlib.util

    from samples.tiny_lm.corpus import docstrings

    docs: list[str] = []
    for name in EXTRA_PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            docs += docstrings(Path(next(iter(spec.submodule_search_locations))))
    ordered = [s for s in sentences_of(docs) if s not in avoid]
    rng = np.random.default_rng(seed)
    return [ordered[i] for i in rng.permutation(len(ordered))[:limit]]


def with_extra(texts: list[str], extra: list[str]) -> tuple[list[str], float]:
    """(sentences in the pipeline's order, test_fraction) such that the pipeline's test split is exactly
    ``held_out(texts)`` and the ``extra`` sentences all land in its training split."""
    from compressor.data import split_indices

    if not extra:
        return texts, HELD_OUT
    train, test = split_indices(len(texts), None, HELD_OUT, 0)
    total = len(texts) + len(extra)
    fraction = len(test) / total
    new_train, new_test = split_indices(total, None, fraction, 0)
    if len(new_test) != len(test):
        raise SystemExit(f"cannot place {len(test)} held-out sentences among {total}")
    out = [""] * total
    for pos, i in zip(sorted(new_test), sorted(test)):
        out[pos] = texts[i]
    for pos, s in zip(sorted(new_train), [texts[i] for i in sorted(train)] + extra):
        out[pos] = s
    return out, fraction


def distillation_texts(limit: int) -> list[str]:
    """The distillation sentences: ``limit`` from the corpus, then the sample's 240 topic sentences."""
    from samples.minilm.data import sentences

    return list(corpus_sentences(limit)) + sentences()[1]


def held_out(texts: list[str]) -> list[str]:
    """The sentences of the pipeline's test split (``compressor.data``'s seeded split, no labels)."""
    from compressor.data import split_indices

    _, test = split_indices(len(texts), None, HELD_OUT, 0)
    return [texts[i] for i in sorted(test)]


def write_data(texts: list[str], path: Path) -> Path:
    """The sentences tokenized at ``TRAIN_TOKENS`` as the pipeline's .npz (written once, atomically)."""
    from compressor.cache import atomic_write_bytes
    from samples.minilm.data import encode

    if not path.exists():
        import io

        enc = encode(texts, max_length=TRAIN_TOKENS)
        buf = io.BytesIO()
        np.savez(buf, **{"x.input_ids": enc["input_ids"], "x.attention_mask": enc["attention_mask"]})
        atomic_write_bytes(path, buf.getvalue())
    return path


def distill_step(args: Any) -> dict[str, Any]:
    """The pipeline step's settings (one place, so the README and the cache key agree)."""
    return {"width": 0.5, "heads": 1 / 3, "importance": "hessian", "loss": "cosine",
            "features": [[f"encoder.encoder.layer.{i}"] * 2 for i in range(LAYERS)],
            "feature_weight": args.feature_weight, "epochs": args.distill_epochs, "lr": args.distill_lr,
            "schedule": args.distill_schedule,
            "batch_size": 32, "trim_padding": True}


def run_distillation(args: Any, data: Path, test_fraction: float = HELD_OUT) -> tuple[Path, dict[str, Any]]:
    """Run the pipeline (cached); return the student's .pt2 and the variant's results."""
    from benchmarks.suite import run_variants

    raw = {"name": "minilm-prune-distill", "model": {"factory": "samples.minilm.model:MiniLMEmbedder"},
           "data": {"npz": str(data), "test_fraction": test_fraction, "calibration": {"split": "train", "limit": 64},
                    "evaluation": {"split": "test"}, "training": {"split": "train"}},
           "metric": "cosine", "budget": {"max_drop": 0.03}, "targets": ["onnxruntime:cpu"],
           "variants": {"distilled": [{"distill.kd": distill_step(args)}]}}
    out = args.out / "minilm"
    variant = run_variants(raw, ROOT, out, args.cache / "compressor")["distilled"]
    return out / variant["artifact"]["path"], variant


def pruned_shape(sample: tuple[Any, ...]) -> tuple[Any, Any]:
    """A MiniLM pruned to the student's shapes (which channels go does not change the shapes): (module, pruner)."""
    from compressor.passes._torch_channels import ChannelSettings, prune_channels
    from samples.minilm.model import MiniLMEmbedder

    module = MiniLMEmbedder().eval()
    pruner, _ = prune_channels(module, sample, ChannelSettings(ratio=0.5, heads=1 / 3, who="minilm"))
    return module, pruner


def load_student(program: Path, sample: tuple[Any, ...]) -> tuple[Any, Any]:
    """The distilled weights of the step's .pt2 in an nn.Module of its shapes, for an ONNX export with a
    dynamic sequence length (the .pt2 was captured at the training length)."""
    import torch

    module, pruner = pruned_shape(sample)
    state = dict(torch.export.load(str(program)).state_dict)
    missing, unexpected = module.load_state_dict(state, strict=False)
    params = {n for n, _ in module.named_parameters()}
    if set(missing) & params or unexpected:
        raise SystemExit(f"the distilled program does not fit the pruned shapes: missing {missing}, extra {unexpected}")
    return module.eval(), pruner


def export(module: Any, path: Path, reuse: bool = False) -> Path:
    """ONNX with dynamic batch and sequence (as the sample's convert.onnx with dynamic_axes).

    ``reuse``: keep a file an earlier run wrote (for models that are the same in every run).
    """
    import warnings

    import torch

    if reuse and path.exists():
        return path

    from compressor.frameworks._torch import quiet_stdout

    ids, mask = torch.ones(2, 16, dtype=torch.long), torch.ones(2, 16, dtype=torch.long)
    batch = torch.export.Dim("batch", min=1, max=1024)
    shapes = ({0: batch, 1: torch.export.Dim.AUTO}, {0: batch, 1: torch.export.Dim.AUTO})
    with warnings.catch_warnings(), quiet_stdout():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), (ids, mask), str(path), input_names=["input_ids", "attention_mask"],
                          output_names=["output"], dynamo=True, external_data=False, dynamic_shapes=shapes)
    return path


def quantize(src: Path, dst: Path) -> Path:
    """Dynamic int8 (per channel), as the sample's quantize.onnx.dynamic variant."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), per_channel=True, weight_type=QuantType.QInt8)
    return dst


def judge(paths: dict[str, Path], held: list[str]) -> dict[str, tuple[float, float, float]]:
    """(mean cosine and min cosine to the original's embeddings of the held-out sentences at their full
    length, topic accuracy on the sample's 240 sentences)."""
    from benchmarks.minilm_variants import embed
    from benchmarks.suite import ort_session
    from samples.minilm.data import encode, load
    from samples.minilm.metrics import centroid_accuracy

    topics = load()
    feed = {"input_ids": topics["x.input_ids"], "attention_mask": topics["x.attention_mask"]}
    out: dict[str, Any] = {}
    ref = None
    for name, path in paths.items():
        session = ort_session(str(path))
        e = embed(session, encode(held, max_length=128))
        ref = e if ref is None else ref
        cos = (e * ref).sum(1) / (np.linalg.norm(e, axis=1) * np.linalg.norm(ref, axis=1))
        out[name] = (float(cos.mean()), float(cos.min()), centroid_accuracy(embed(session, feed), topics["y"]))
    return out


def minilm(args: Any) -> list[list[Any]]:
    """Rows for the table: original, pruned (not distilled), pruned + distilled, each fp32 and dynamic int8."""
    import torch

    from benchmarks.minilm_variants import latency_feed
    from compressor.frameworks._torch import params_and_macs
    from samples.minilm.model import MiniLMEmbedder

    folder = args.cache / "minilm"
    folder.mkdir(parents=True, exist_ok=True)
    texts = distillation_texts(args.distill_sentences)
    extra = package_sentences(args.extra_sentences, set(texts)) if args.extra_sentences else []
    ordered, fraction = with_extra(texts, extra)
    suffix = f"+{len(extra)}" if extra else ""
    data = write_data(ordered, folder / f"distill-{args.distill_sentences}{suffix}x{TRAIN_TOKENS}.npz")
    feed8 = latency_feed(8, 128)
    sample = tuple(torch.from_numpy(feed8[k][:2]) for k in ("input_ids", "attention_mask"))
    teacher = MiniLMEmbedder().eval()
    program, variant = run_distillation(args, data, fraction)
    student, pruner = load_student(program, sample)
    undistilled, _ = pruned_shape(sample)  # L1-ranked, no training: what is lost before distilling
    cost = {"original": params_and_macs(teacher, sample), "pruned": params_and_macs(student, sample)}
    paths = {"original": export(teacher, folder / "original.onnx", reuse=True),
             "pruned, not distilled": export(undistilled, folder / "pruned-l1.onnx", reuse=True),
             "pruned + distilled": export(student, folder / "distilled.onnx")}
    paths["original int8"] = quantize(paths["original"], folder / "original-int8.onnx")
    paths["pruned + distilled int8"] = quantize(paths["pruned + distilled"], folder / "distilled-int8.onnx")
    print(f"  distill.kd: loss per epoch {variant['ledger'][-1]['report']['loss']}, pipeline cosine "
          f"{variant['metric']:.4f} (held-out, {TRAIN_TOKENS} tokens)", flush=True)
    return _rows(paths, cost, pruner, feed8, args.rounds, held_out(texts))


def _rows(paths: dict[str, Path], cost: dict[str, Any], pruner: Any, feed8: dict[str, np.ndarray],
          rounds: int, held: list[str]) -> list[list[Any]]:
    from benchmarks.suite import onnx_rounds, ratio_cell

    scores = judge(paths, held)
    feeds = {1: {k: v[:1] for k, v in feed8.items()}, 8: feed8}
    lat = onnx_rounds(paths, feeds, rounds)
    heads = next(iter(pruner.heads().values()))
    rows = []
    for n in paths:
        c = cost["original" if n.startswith("original") else "pruned"]
        mean, low, acc = scores[n]
        label = "MiniLM-L6" if n.startswith("original") else f"MiniLM-L6, heads {heads[0]}->{heads[1]}, MLP 1536->768"
        rows.append([label, n, c["params"], c["macs"], f"cosine {mean:.4f} (min {low:.3f}), topic acc {acc:.3f}",
                     float(np.median(lat[1][n])), float(np.median(lat[8][n])),
                     ratio_cell(lat[1][n], lat[1]["original"]), ratio_cell(lat[8][n], lat[8]["original"])])
    return rows
