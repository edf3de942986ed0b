"""The MiniLM workload of ``benchmarks.structured_pruning``: heads and MLP width pruned, then distilled.

all-MiniLM-L6-v2 loses half of each MLP's hidden width and a third of its attention heads (the
hidden width, which reaches the embedding, stays) on Torch-Pruning, as ``distill.kd`` builds a
pruned copy of the teacher (``compressor.passes.distill._torch.pruned_copy``'s engine). It is then
distilled from the unpruned model with the cosine loss of ``distill.kd``'s ``loss: cosine`` on
sentences from the docstrings of the Python standard library (read with ``ast``, nothing imported):
text disjoint from the sample's 240 evaluation sentences. The teacher's embeddings are computed once
and batches hold sentences of similar length (two CPU cores: the loop is this file's, the loss the
pass's). Judged by cosine to the original embeddings and topic accuracy on the 240 sentences; timed
in ONNX at batch 1 and 8 x 128 tokens beside the original, fp32 and with dynamic int8 on top.
"""
from __future__ import annotations

import ast
import re
import sysconfig
from pathlib import Path
from typing import Any

import numpy as np

SENTENCE = re.compile(r"(?<=[.!?])\s+")
BATCH = 16  # sentences per distillation step


def docstring_sentences(limit: int, seed: int = 0) -> list[str]:
    """Plain English sentences (6-40 words) from the standard library's docstrings, deduplicated, seeded sample."""
    found: set[str] = set()
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).rglob("*.py")):
        if "test" in path.parts or "site-packages" in path.parts:
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node) or ""
                for s in SENTENCE.split(" ".join(doc.split())):
                    words = s.split()
                    if 6 <= len(words) <= 40 and sum(w.isalpha() for w in words) >= 0.7 * len(words):
                        found.add(s)
    ordered = sorted(found)
    rng = np.random.default_rng(seed)
    return [ordered[i] for i in rng.permutation(len(ordered))[:limit]]


def _embed(model: Any, enc: dict[str, np.ndarray], batch: int = 64) -> Any:
    import torch

    outs = []
    with torch.no_grad():
        for i in range(0, len(enc["input_ids"]), batch):
            ids, mask = (torch.from_numpy(enc[k][i:i + batch]) for k in ("input_ids", "attention_mask"))
            width = int(mask.sum(1).max())
            outs.append(model(ids[:, :width], mask[:, :width]))
    return torch.cat(outs)


def distill_cosine(teacher: Any, student: Any, texts: list[str], epochs: int, lr: float, seed: int = 0) -> list[float]:
    """Train ``student`` toward ``teacher``'s embeddings of ``texts`` (1 - cosine); the mean loss per epoch."""
    import torch

    from compressor.passes._torch_fit import pinned_threads, training_threads
    from compressor.passes.distill._torch import match_loss
    from samples.minilm.data import encode

    enc = encode(texts, max_length=64)
    order = np.argsort(enc["attention_mask"].sum(1), kind="stable")  # similar lengths share a batch
    enc = {k: v[order] for k, v in enc.items()}
    with pinned_threads(training_threads()):
        target = _embed(teacher, enc)
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        optimizer = torch.optim.AdamW(student.parameters(), lr=lr, weight_decay=0.0)
        batches = [np.arange(i, min(i + BATCH, len(order))) for i in range(0, len(order), BATCH)]
        steps, step, history = epochs * len(batches), 0, []
        student.train()
        for _ in range(epochs):
            losses = []
            for b in rng.permutation(len(batches)):
                idx = batches[b]
                ids, mask = (torch.from_numpy(enc[k][idx]) for k in ("input_ids", "attention_mask"))
                width = int(mask.sum(1).max())
                for group in optimizer.param_groups:  # linear decay to 10%
                    group["lr"] = lr * (1.0 - 0.9 * step / steps)
                loss = match_loss(student(ids[:, :width], mask[:, :width]), target[idx], "cosine")
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                step += 1
                losses.append(float(loss.detach()))
            history.append(float(np.mean(losses)))
            print(f"  distill epoch {len(history)}/{epochs}: 1 - cosine {history[-1]:.4f}", flush=True)
    student.eval()
    return history


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


def judge(paths: dict[str, Path]) -> dict[str, tuple[float, float, float]]:
    """(mean cosine, min cosine to the original's embeddings, topic accuracy) on the 240 sentences."""
    from benchmarks.minilm_variants import embed
    from benchmarks.suite import ort_session
    from samples.minilm.data import load
    from samples.minilm.metrics import centroid_accuracy

    data = load()
    feed = {"input_ids": data["x.input_ids"], "attention_mask": data["x.attention_mask"]}
    embs = {n: embed(ort_session(str(p)), feed) for n, p in paths.items()}
    ref = embs["original"]
    out = {}
    for n, e in embs.items():
        cos = (e * ref).sum(1) / (np.linalg.norm(e, axis=1) * np.linalg.norm(ref, axis=1))
        out[n] = (float(cos.mean()), float(cos.min()), centroid_accuracy(e, data["y"]))
    return out


def minilm(args: Any) -> list[list[Any]]:
    """Rows for the table: original, pruned, pruned + distilled (``--distill-epochs`` > 0), each fp32 and int8."""
    import torch

    from benchmarks.minilm_variants import latency_feed
    from compressor.frameworks._torch import params_and_macs
    from compressor.passes._torch_channels import ChannelSettings, prune_channels
    from samples.minilm.model import MiniLMEmbedder

    folder = args.cache / "minilm"
    folder.mkdir(parents=True, exist_ok=True)
    teacher = MiniLMEmbedder().eval()
    feed8 = latency_feed(8, 128)
    sample = tuple(torch.from_numpy(feed8[k][:2]) for k in ("input_ids", "attention_mask"))
    student = MiniLMEmbedder().eval()
    pruner, _ = prune_channels(student, sample, ChannelSettings(ratio=0.5, heads=1 / 3, who="minilm"))
    cost = {"original": params_and_macs(teacher, sample), "pruned": params_and_macs(student, sample)}
    paths = {"original": export(teacher, folder / "original.onnx", reuse=True),
             "pruned": export(student, folder / "pruned.onnx", reuse=True)}  # pruning is deterministic
    weights = folder / f"distilled-{args.distill_sentences}-{args.distill_epochs}-b{BATCH}.safetensors"
    if not args.distill_epochs:  # measure the pruned model alone: params, MACs, latency, undistilled cosine
        paths["pruned-int8"] = quantize(paths["pruned"], folder / "pruned-int8.onnx")
        paths["original-int8"] = quantize(paths["original"], folder / "original-int8.onnx")
        return _rows(paths, cost, pruner, feed8, args.rounds)
    if weights.exists():
        from safetensors.torch import load_file

        student.load_state_dict(load_file(str(weights)))
    else:
        from safetensors.torch import save_file

        distill_cosine(teacher, student, docstring_sentences(args.distill_sentences), args.distill_epochs, lr=2e-4)
        save_file({k: v.contiguous() for k, v in student.state_dict().items()}, str(weights))
    paths["distilled"] = export(student, folder / "distilled.onnx")
    paths["distilled-int8"] = quantize(paths["distilled"], folder / "distilled-int8.onnx")
    paths["original-int8"] = quantize(paths["original"], folder / "original-int8.onnx")
    return _rows(paths, cost, pruner, feed8, args.rounds)


def _rows(paths: dict[str, Path], cost: dict[str, Any], pruner: Any, feed8: dict[str, np.ndarray],
          rounds: int) -> list[list[Any]]:
    from benchmarks.suite import onnx_p50

    scores = judge(paths)
    feeds = {1: {k: v[:1] for k, v in feed8.items()}, 8: feed8}
    lat = onnx_p50(paths, feeds, rounds)
    heads = next(iter(pruner.heads().values()))
    rows = []
    for n in paths:
        c = cost["original" if n.startswith("original") else "pruned"]
        mean, low, acc = scores[n]
        rows.append([f"MiniLM-L6 (heads {heads[0]}->{heads[1]}, MLP 1536->768)" if n != "original" else "MiniLM-L6",
                     n, c["params"], c["macs"],
                     f"cosine {mean:.4f} (min {low:.3f}), topic acc {acc:.3f}", lat[1][n], lat[8][n],
                     lat[1][n] / lat[1]["original"], lat[8][n] / lat[8]["original"]])
    return rows
