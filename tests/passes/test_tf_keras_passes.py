"""prune.magnitude and quantize.keras.qat on tf-keras models (tfmot), and their refusal of Keras 3 models."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from compressor.errors import InputRefused, PassError
from compressor.formats import Format
from tests.tiny_keras import keras_runner, step, trained

pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    return keras_runner(tmp_path_factory.mktemp("tfk"), trained("tf_keras", ".h5"))


def _kernels(path: Path) -> dict[str, np.ndarray]:
    from compressor.frameworks._tf import load_keras

    model = load_keras(path)
    return {layer.name: layer.kernel.numpy() for layer in model.layers if hasattr(layer, "kernel")}


def test_prune_polynomial_reaches_sparsity_and_strips_wrappers(runner) -> None:
    # the 72-weight conv is left dense: at 80 % it would keep 14 weights and the tiny model could not recover
    config = {"sparsity": 0.8, "scope": "layer", "schedule": "polynomial", "finetune_epochs": 3, "lr": 5e-3,
              "update_every_steps": 5, "exclude": ["conv"]}
    art, entry = step(runner, "prune.magnitude", config)
    assert art.format == Format.KERAS and art.meta["keras"] == "tf_keras" and Path(art.path).suffix == ".h5"
    kernels = _kernels(Path(art.path))  # loads with plain tf_keras: no pruning wrappers left
    assert set(kernels) == {"conv", "fc1", "fc2"} and float(np.mean(kernels["conv"] == 0)) == 0.0
    for name in ("fc1", "fc2"):
        assert abs(float(np.mean(kernels[name] == 0)) - 0.8) < 0.01, name
    assert entry["report"]["sparsity"] >= 0.79 and entry["metric_drop"] <= 0.05
    tfl, entry = step(runner, "convert.tflite", {"quantize": "int8"}, parent=art)
    assert entry["report"]["int8_share"] == 1.0


def test_prune_global_oneshot_gives_layers_different_shares(runner) -> None:
    art, entry = step(runner, "prune.magnitude", {"sparsity": 0.5, "exclude": ["fc2"]})
    report = entry["report"]
    assert report["layers_skipped"] == {"fc2": "matched by exclude"}
    assert abs(report["sparsity"] - 0.5) < 0.01 and len(set(report["per_layer"].values())) > 1
    assert float(np.mean(_kernels(Path(art.path))["fc2"] == 0)) == 0.0


def test_prune_unknown_layer_is_refused(runner) -> None:
    with pytest.raises(PassError, match="layer 'fc9'"):
        step(runner, "prune.magnitude", {"sparsity": 0.5, "include": ["fc9"]})


def test_qat_then_int8_tflite(runner) -> None:
    art, entry = step(runner, "quantize.keras.qat", {"epochs": 1})
    assert art.meta == {"keras": "tf_keras", "keras_custom": "tfmot_qat"}
    assert entry["report"]["layers_wrapped"] >= 3 and entry["metric_drop"] <= 0.03
    tfl, entry = step(runner, "convert.tflite", {"quantize": "int8"}, parent=art)
    assert entry["report"]["int8_share"] == 1.0 and entry["metric_drop"] <= 0.03
    with pytest.raises(PassError, match="already quantization-aware"):
        step(runner, "quantize.keras.qat", {}, parent=art)


@pytest.mark.parametrize("name,config", [("prune.magnitude", {"sparsity": 0.5}), ("quantize.keras.qat", {})])
def test_keras3_model_is_refused_with_the_way_out(tmp_path: Path, name: str, config: dict) -> None:
    r = keras_runner(tmp_path, trained("keras3"))
    with pytest.raises(PassError, match=r"tf-keras \(Keras 2\).*Keras 3.*tf_keras") as err:
        step(r, name, config)
    assert isinstance(err.value, InputRefused)  # refused in check, before any work: CLI exit 2


def test_convert_tf_keras_rebuilds_keras3_models_exactly(tmp_path: Path) -> None:
    import keras

    r = keras_runner(tmp_path / "seq", trained("keras3"))
    art, entry = step(r, "convert.tf_keras")
    assert art.meta == {"keras": "tf_keras"} and entry["report"]["rebuilt"] and entry["parity"]["max_abs_error"] == 0.0
    pruned, entry = step(r, "prune.magnitude", {"sparsity": 0.5}, parent=art)  # tfmot now takes it
    assert entry["report"]["sparsity"] == 0.5
    # a Functional model with BatchNorm, a residual Add, a regularizer and Dropout
    inp = keras.Input((8, 8, 1), name="img")
    h = keras.layers.BatchNormalization()(keras.layers.Conv2D(4, 3, padding="same")(inp))
    h = keras.layers.ReLU()(keras.layers.Add()([h, keras.layers.Conv2D(4, 1)(inp)]))
    out = keras.layers.Dense(10, kernel_regularizer="l2")(keras.layers.Dropout(0.1)(keras.layers.GlobalAveragePooling2D()(h)))
    keras.Model(inp, out).save(tmp_path / "func.keras")
    r = keras_runner(tmp_path / "func", tmp_path / "func.keras")
    art, entry = step(r, "convert.tf_keras")
    assert entry["report"]["layers"] == 9 and entry["parity"]["max_abs_error"] <= 1e-6
