"""ORT's MatMulNBits quantizer call (the ONNX side of quantize.onnx.weight_only).

ORT 1.32's GPTQ path ignores ``nodes_to_exclude`` (only its RTN path reads it); the exclusions are handed to
GPTQ through its per-node config instead, and every excluded MatMul is checked to still be a MatMul after
any algorithm, so an exclusion is never silently dropped.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from compressor.errors import PassError, first_line
from compressor.passes.quantize._onnx import SplitReader, _quiet

if TYPE_CHECKING:
    from compressor.artifact import Signature
    from compressor.data import Split
    from compressor.passes.quantize.onnx_weight_only import WeightOnlyConfig


def has_weight_matmul(path: Path) -> bool:
    """Whether the graph has a MatMul whose second input is a constant weight."""
    from compressor.frameworks._onnx import load_onnx

    model = load_onnx(path, load_weights=False)
    inits = {i.name for i in model.graph.initializer}
    return any(n.op_type == "MatMul" and len(n.input) > 1 and n.input[1] in inits for n in model.graph.node)


def quantize_weight_only(src: Path, dst: Path, config: WeightOnlyConfig, split: Split = None, signature: Signature = None) -> dict[str, Any]:
    """Block-wise int4 / int8 MatMul weights through ORT's MatMulNBits quantizer."""
    import onnx
    from onnxruntime.quantization import QuantFormat
    from onnxruntime.quantization import matmul_nbits_quantizer as mnq

    common = dict(block_size=config.block_size, is_symmetric=config.symmetric, accuracy_level=config.accuracy_level)
    if config.algorithm == "default":
        algo = mnq.DefaultWeightOnlyQuantConfig(bits=config.bits, quant_format=QuantFormat.QOperator, **common)
        kwargs: dict[str, Any] = {}
    elif config.algorithm == "hqq":
        algo = mnq.HQQWeightOnlyQuantConfig(block_size=config.block_size, bits=config.bits)
        kwargs = {"accuracy_level": config.accuracy_level}
    elif config.algorithm == "rtn":  # group size, symmetry and bits come from the quantizer's kwargs
        algo, kwargs = mnq.RTNWeightOnlyQuantConfig(), dict(common, bits=config.bits)
    else:  # gptq: calibrated on the pipeline's calibration split
        reader = SplitReader(split, signature, config.calibration_batch_size)
        algo, kwargs = mnq.GPTQWeightOnlyQuantConfig(calibration_data_reader=reader), dict(common, bits=config.bits)
    quantizer = mnq.MatMulNBitsQuantizer(onnx.load(str(src)), algo_config=algo,
                                         nodes_to_exclude=list(config.exclude_nodes) or None, **kwargs)
    if config.algorithm == "gptq" and config.exclude_nodes:  # "fp32": the per-node config's "leave it" value
        make_config = quantizer._generate_q4_node_config
        quantizer._generate_q4_node_config = lambda: {**make_config(), **dict.fromkeys(config.exclude_nodes, "fp32")}
    try:
        with _quiet():
            quantizer.process()
    except Exception as exc:  # the quantizers raise ValueError / RuntimeError / AssertionError
        detail = first_line(exc, 300)
        raise PassError(
            f"pass 'quantize.onnx.weight_only': the {config.algorithm} quantizer failed ({detail}); "
            f"try block_size 32 or 64, or symmetric: true."
        ) from None
    quantizer.model.save_model_to_file(str(dst), use_external_data_format=False)
    nodes = onnx.load(str(dst), load_external_data=False).graph.node
    quantized = sorted(set(config.exclude_nodes) - {n.name for n in nodes if n.op_type == "MatMul"})
    if quantized:
        raise PassError(f"pass 'quantize.onnx.weight_only': the {config.algorithm} quantizer did not keep {quantized} "
                        f"as float MatMul although exclude_nodes names them (this ORT ignores the exclusion for it); "
                        f"try another algorithm.")
    ops = [n.op_type for n in nodes]
    return {"matmul_nbits": ops.count("MatMulNBits"), "float_matmuls": ops.count("MatMul")}
