"""litert-torch on the tiny LM's architecture with one key/value head (multi-query attention): the evidence.

The same Llama decoder (transformers, eager attention, 4 query heads of 16) is converted by litert-torch
twice, with 2 key/value heads and with 1, from the same seeded random weights, and the .tflite logits are
compared with torch's on one 64-token sequence (LiteRT's reference kernels, no XNNPACK). With 2 key/value heads
the file matches torch to float rounding; with 1 it is wrong after position 0 (position 0 attends only to
itself, so it still matches), which is why the sample's settings keep 2 key/value heads.

    python -m benchmarks.litert_mqa
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np


def max_error(kv_heads: int, folder: Path) -> tuple[float, float, float]:
    """(max |tflite - torch| over all logits, the same at position 0, max |torch logits|)."""
    os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")
    import litert_torch
    import torch

    from compressor.frameworks._litert import _open_interpreter
    from samples.tiny_lm.model import TinyLM

    config = {"model_type": "llama", "vocab_size": 512, "hidden_size": 64, "intermediate_size": 128,
              "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": kv_heads,
              "max_position_embeddings": 1024, "rms_norm_eps": 1e-5, "tie_word_embeddings": False}
    (folder / "config.json").write_text(json.dumps(config))
    torch.manual_seed(0)
    model = TinyLM(str(folder)).eval()
    with torch.no_grad():
        for p in model.parameters():  # trained-sized weights: the error grows with them
            p.mul_(3.0)
    ids = torch.from_numpy(np.random.default_rng(0).integers(0, 512, (1, 64)))
    mask = torch.ones_like(ids)
    path = folder / "model.tflite"
    litert_torch.convert(model, sample_args=(), sample_kwargs={"input_ids": ids, "attention_mask": mask}).export(str(path))
    interpreter = _open_interpreter(path, 1, False)
    interpreter.allocate_tensors()
    inputs = {d["name"]: d for d in interpreter.get_input_details()}
    interpreter.set_tensor(inputs["serving_default_input_ids"]["index"], ids.numpy().astype(np.int32))
    interpreter.set_tensor(inputs["serving_default_attention_mask"]["index"], mask.numpy().astype(np.int32))
    interpreter.invoke()
    got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    with torch.inference_mode():
        ref = model(ids, mask).numpy()
    err = np.abs(got - ref)
    return float(err.max()), float(err[:, 0].max()), float(np.abs(ref).max())


def main() -> None:
    print("key/value heads | max abs error (all positions) | at position 0 | max |logit|")
    for kv in (2, 1):
        with tempfile.TemporaryDirectory() as tmp:
            everywhere, first, scale = max_error(kv, Path(tmp))
        print(f"{kv} | {everywhere:.3g} | {first:.3g} | {scale:.3g}")


if __name__ == "__main__":
    main()
