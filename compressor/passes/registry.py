"""Pass registry: dotted pass names mapped to "module:attr" strings.

Listing passes imports nothing; resolving one imports only its (light) module. Pass modules
import torch, onnxruntime or tensorflow inside the functions that need them.
"""
from __future__ import annotations

from typing import Any

from compressor.code import load_attr
from compressor.errors import ConfigError, did_you_mean, unknown_name

PASSES: dict[str, str] = {
    "convert.onnx": "compressor.passes.convert.to_onnx:ConvertOnnx",
    "optimize.onnx": "compressor.passes.optimize.onnx_graph:OptimizeOnnx",
    "quantize.onnx.dynamic": "compressor.passes.quantize.onnx_dynamic:QuantizeOnnxDynamic",
    "quantize.onnx.static": "compressor.passes.quantize.onnx_static:QuantizeOnnxStatic",
    "quantize.onnx.fp16": "compressor.passes.quantize.onnx_fp16:QuantizeOnnxFp16",
    "quantize.onnx.weight_only": "compressor.passes.quantize.onnx_weight_only:QuantizeOnnxWeightOnly",
    "quantize.torch.dynamic": "compressor.passes.quantize.torch_dynamic:QuantizeTorchDynamic",
    "quantize.torch.static": "compressor.passes.quantize.torch_static:QuantizeTorchStatic",
    "quantize.torch.qat": "compressor.passes.quantize.torch_qat:QuantizeTorchQat",
    "quantize.torch.weight_only": "compressor.passes.quantize.torch_weight_only:QuantizeTorchWeightOnly",
    "quantize.torch.smoothquant": "compressor.passes.quantize.torch_smoothquant:QuantizeTorchSmoothquant",
    "prune.magnitude": "compressor.passes.prune.magnitude:PruneMagnitude",
    "prune.structured": "compressor.passes.prune.structured:PruneStructured",
    "prune.nm": "compressor.passes.prune.nm:PruneNm",
    "distill.kd": "compressor.passes.distill.kd:DistillKd",
    "train.finetune": "compressor.passes.train.finetune:TrainFinetune",
    "convert.tflite": "compressor.passes.convert.to_tflite:ConvertTflite",
    "convert.ort": "compressor.passes.convert.to_ort:ConvertOrt",
    "quantize.keras.qat": "compressor.passes.quantize.keras_qat:QuantizeKerasQat",
    "convert.tf_keras": "compressor.passes.convert.to_tf_keras:ConvertTfKeras",
}

DESCRIPTIONS: dict[str, str] = {
    "convert.onnx": "export a PyTorch, Keras or SavedModel model to ONNX (opset, dynamic batch)",
    "optimize.onnx": "ONNX Runtime offline graph optimization (basic / extended / all)",
    "quantize.onnx.dynamic": "int8 weights, activations quantized at run time (ORT quantizer)",
    "quantize.onnx.static": "int8 weights and activations, calibrated on the calibration split",
    "quantize.onnx.fp16": "float16 weights and compute, float32 inputs and outputs kept",
    "quantize.onnx.weight_only": "int4 / int8 block-wise MatMul weights (MatMulNBits: default, rtn, hqq, gptq)",
    "quantize.torch.dynamic": "int8 Linear / LSTM / GRU weights via torch.ao dynamic quantization (torch runtime)",
    "quantize.torch.static": "int8 PT2E (torchao, x86 or xnnpack quantizer) calibrated on the calibration split; .pt2",
    "quantize.torch.qat": "int8 PT2E quantization-aware training on the training split (torchao); .pt2",
    "quantize.torch.weight_only": "int4 / int8 group-wise Linear weights (neural-compressor rtn, gptq, awq); stored dequantized",
    "quantize.torch.smoothquant": "SmoothQuant int8 (neural-compressor); needs intel_extension_for_pytorch, refused without it",
    "prune.magnitude": "unstructured magnitude pruning of a PyTorch or tf-keras (tfmot) model, with fine-tuning",
    "prune.structured": "remove coupled channel groups and attention heads (Torch-Pruning's dependency graph); fine-tune",
    "prune.nm": "N:M semi-structured sparsity (2:4 default) with fine-tuning (GPU sparse kernels)",
    "distill.kd": "knowledge distillation of the current model into a smaller student",
    "train.finetune": "transfer learning: freeze a backbone, replace the head, train",
    "convert.tflite": "Keras / SavedModel / PyTorch to TFLite: quantize none, fp16, dynamic or full int8",
    "convert.ort": "ONNX to ORT format for ONNX Runtime Mobile (optimized offline, portable by default)",
    "quantize.keras.qat": "quantization-aware training of a tf-keras model (tfmot); then convert.tflite int8",
    "convert.tf_keras": "rebuild a Keras 3 model as tf-keras (Keras 2), which the tfmot passes need",
}


def pass_names() -> list[str]:
    """Every registered pass name, sorted; imports nothing."""
    return sorted(PASSES)


def get_pass_class(name: str) -> type:
    """The Pass class registered under ``name``, with a did-you-mean for unknown names."""
    if name not in PASSES:
        raise unknown_name("pass", name, PASSES, "Run 'compressor passes' to list them.")
    return load_attr(PASSES[name])


def conversions_between(source: Any, targets: Any) -> list[str]:
    """The conversion passes that take a ``source``-format model and write one of ``targets``."""
    found = []
    for name in pass_names():
        cls = get_pass_class(name)
        if cls.is_conversion and source in cls.input_formats and cls.output_format in targets:
            found.append(name)
    return found


def build_pass(name: str, config: dict[str, Any] | None = None) -> Any:
    """Validate ``config`` against the pass's config class and return the pass instance."""
    cls = get_pass_class(name)
    return cls(validate_config(name, cls.config_class, config or {}))


def validate_config(pass_name: str, config_class: type, raw: dict[str, Any]) -> Any:
    """Validate a raw config dict, turning pydantic errors into one clear line."""
    from pydantic import ValidationError

    if not isinstance(raw, dict):
        raise ConfigError(
            f"config of pass '{pass_name}' must be a mapping of keys to values, got {raw!r}."
        )
    known = list(config_class.model_fields)
    for key in raw:
        if key not in config_class.model_fields:
            raise ConfigError(
                f"pass '{pass_name}' has no setting '{key}'.{did_you_mean(key, known)} "
                f"Known: {', '.join(known) or '(none)'}."
            )
    try:
        return config_class(**raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        if not err["loc"]:  # a rule across keys (a model validator)
            raise ConfigError(f"pass '{pass_name}': {err['msg'].removeprefix('Value error, ')}.") from None
        where = ".".join(str(p) for p in err["loc"])
        raise ConfigError(
            f"pass '{pass_name}' setting '{where}' = {err.get('input')!r} is invalid: {err['msg']}."
        ) from None
