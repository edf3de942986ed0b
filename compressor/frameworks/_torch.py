"""PyTorch facts: build, load and save a torch model folder (factory + safetensors) or a
torch.export program, example inputs for a signature, the signature of a module, and what a model
holds (parameters, MACs, sparsity)."""
from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from compressor.artifact import BATCH, Artifact, Signature, TensorSpec
from compressor.errors import ModelLoadError, first_line

log = logging.getLogger(__name__)


def params_and_macs(module: Any, sample: Any) -> dict[str, int]:
    """Parameter count and MACs per sample of ``module`` (Conv and Linear layers; others are free).

    ``sample`` is a batch of inputs (a tensor or a tuple of tensors); MACs are divided by its batch size.
    """
    import torch
    from torch import nn

    macs = 0

    def conv_hook(layer: Any, _inputs: Any, out: Any) -> None:
        nonlocal macs
        kernel = 1
        for k in layer.kernel_size:
            kernel *= k
        macs += out.numel() * (layer.in_channels // layer.groups) * kernel

    def linear_hook(layer: Any, _inputs: Any, out: Any) -> None:
        nonlocal macs
        macs += out.numel() * layer.in_features

    handles = []
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    args = sample if isinstance(sample, tuple) else (sample,)
    try:
        with torch.no_grad():
            module(*args)
    finally:
        for h in handles:
            h.remove()
    batch = max(int(args[0].shape[0]), 1)
    return {"params": sum(p.numel() for p in module.parameters()), "macs": macs // batch}


MODEL_JSON = "model.json"


WEIGHTS = "weights.safetensors"


def build_module(factory: str, kwargs: dict[str, Any]) -> Any:
    """Call a factory the user named (their pipeline file); a factory a model folder names goes through
    ``recorded_factory`` first."""
    import inspect

    from compressor.code import load_attr

    build = load_attr(factory)
    if not callable(build):
        raise ModelLoadError(f"factory '{factory}' is a {type(build).__name__}, not a class or function; "
                             f"name the nn.Module class or a function that returns one.")
    try:
        inspect.signature(build).bind(**kwargs)
    except TypeError as exc:
        raise ModelLoadError(f"factory '{factory}' does not take the keyword arguments {sorted(kwargs)} "
                             f"({first_line(exc)}); fix model.kwargs to match its parameters.") from None
    except ValueError:  # no signature to read (a builtin): let the call decide
        pass
    try:
        return build(**kwargs)
    except Exception as exc:  # the user's own code failed: say where, in one line
        raise ModelLoadError(f"factory '{factory}' raised {type(exc).__name__} while building the model: "
                             f"{first_line(exc)}; fix the factory or its model.kwargs.") from None


# post-load rewrites a torch model folder may name in model.json ("post_load": [{"name", "kwargs"}]):
# a quantized module whose state is not plain tensors is stored as its float weights plus the
# deterministic recipe that quantizes them again on load. Only these names, never a "module:attr".
POST_LOAD = {"quantize_dynamic": "compressor.frameworks._torch:apply_dynamic"}


def read_model_json(path: Path) -> dict[str, Any]:
    """The description in a torch model folder's model.json, checked for shape (nothing imported)."""
    try:
        desc = json.loads((path / MODEL_JSON).read_text())
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"torch model folder '{path}' has no readable {MODEL_JSON} ({exc}).") from None
    if not (isinstance(desc, dict) and isinstance(desc.get("factory"), str)
            and isinstance(desc.get("kwargs", {}), dict) and isinstance(desc.get("post_load", []), list)):
        raise ModelLoadError(
            f"torch model folder '{path}' has a {MODEL_JSON} that is not {{\"factory\": \"module:name\", "
            f"\"kwargs\": {{...}}}}; save the model with compressor again."
        )
    return desc


def recorded_factory(path: Path, trust: Any = None) -> tuple[str, dict[str, Any]]:
    """The factory and kwargs a torch model folder records, once the trust policy allows the factory.

    The folder may come from anywhere: its factory is imported only when the user named it (in the
    pipeline) or passed --trust-code (``compressor.code.TrustPolicy``; ``trust`` None = the one in force).
    """
    desc = _trusted_description(Path(path), trust)
    return desc["factory"], dict(desc.get("kwargs", {}))


def _trusted_description(path: Path, trust: Any) -> dict[str, Any]:
    from compressor.code import check_recorded

    desc = read_model_json(path)
    check_recorded(desc["factory"], f"model folder '{path}'", f"its {MODEL_JSON} factory", trust)
    return desc


def load_module(path: Path, trust: Any = None) -> Any:
    """Rebuild the nn.Module stored in a torch model folder, in eval mode (its factory checked for trust)."""
    from safetensors.torch import load_file

    from compressor.code import load_attr

    path = Path(path)
    desc = _trusted_description(path, trust)
    factory = desc["factory"]
    module = build_module(factory, desc.get("kwargs", {}))
    try:
        state = load_file(str(path / WEIGHTS))
        module.load_state_dict(state, strict=True)
    except Exception as exc:
        raise ModelLoadError(
            f"weights in '{path / WEIGHTS}' do not fit factory '{factory}': "
            f"{first_line(exc, 300)}. Check model.factory and model.kwargs."
        ) from None
    for step in desc.get("post_load", []):  # deterministic rewrites, by name from a fixed table
        name = step.get("name") if isinstance(step, dict) else None
        if name not in POST_LOAD:
            raise ModelLoadError(
                f"torch model folder '{path}' asks for post-load step {name!r}; known: "
                f"{', '.join(POST_LOAD)}. It was written by a newer compressor."
            )
        module = load_attr(POST_LOAD[name])(module, **step.get("kwargs", {}))
    return module.eval()


def pickled_parts(path: Path) -> list[str]:
    """The parts of a .pt2 archive that torch.export.load would unpickle with code execution allowed.

    A program's graph is JSON and its tensors raw bytes, but the format also admits pickled tensor
    subclasses (``use_pickle``), custom and opaque objects, legacy ``.pt`` weight files, and sample
    inputs whose safe load falls back to a full unpickle (torch 2.13): a file from elsewhere could run
    code through any of them. Read without torch; an empty list means the archive is plain data.
    """
    import zipfile

    found = []
    try:
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                part = name.split("/", 1)[-1]
                if part.endswith("_config.json") and part.startswith(("data/weights/", "data/constants/")):
                    for key, meta in json.loads(archive.read(name)).get("config", {}).items():
                        if meta.get("use_pickle") or str(meta.get("path_name", "")).startswith(("custom_obj_", "opaque_obj_")):
                            found.append(f"{part}:{key}")
                elif part.startswith(("data/weights/", "data/constants/")) and part.endswith(".pt"):
                    found.append(part)
                elif part.startswith("data/sample_inputs/") and not _loads_safely(archive.read(name)):
                    found.append(part)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise ModelLoadError(f"'{path}' is not a readable .pt2 archive ({first_line(exc)}); re-export it.") from None
    return found


def _loads_safely(data: bytes) -> bool:
    import torch

    try:
        torch.load(io.BytesIO(data), weights_only=True)
    except Exception:
        return False
    return True


def load_exported(path: Path, trust: Any = None) -> Any:
    """The module of a torch.export program (.pt2), with the quantize/dequantize ops it may name registered.

    An archive holding pickled parts (``pickled_parts``) loads only when the trust policy trusts every
    name (--trust-code): unpickling them could run code the file names.
    """
    import torch

    from compressor.code import current_trust
    from compressor.errors import UntrustedCodeError

    pickled = pickled_parts(Path(path))
    if pickled and not (trust or current_trust()).trust_all:
        raise UntrustedCodeError(
            f"exported program '{path}' holds pickled parts ({', '.join(pickled[:3])}) that loading would unpickle, "
            f"which can run code; pass --trust-code if you trust this file, or export it again without them.")

    # a PT2E-quantized program calls torch.ops.quantized_decomposed.*, which exist only once this module
    # is imported (torchao's PT2E imports it too); deserializing such a program fails without them
    try:
        import torch.ao.quantization.fx._decomposed  # noqa: F401
    except ImportError:
        pass
    try:
        return torch.export.load(str(path)).module()
    except Exception as exc:
        detail = first_line(exc, 300)
        raise ModelLoadError(f"cannot load exported program '{path}': {detail}") from None


def save_module(module: Any, factory: str, kwargs: dict[str, Any], out_dir: Path) -> Path:
    """Write a torch model folder: model.json (factory + kwargs) and weights.safetensors."""
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}
    save_file(state, str(out_dir / WEIGHTS))
    (out_dir / MODEL_JSON).write_text(json.dumps({"factory": factory, "kwargs": kwargs}, sort_keys=True, indent=2))
    return out_dir


def save_exported(module: Any, signature: Any, path: Path) -> Path:
    """Write ``module`` as a torch.export program (.pt2) with a symbolic batch dimension."""
    import torch

    module = module.eval()
    args = sample_inputs(signature, batch=4)
    batch = torch.export.Dim("batch", min=1, max=65536)
    try:
        program = torch.export.export(module, args, dynamic_shapes=tuple({0: batch} for _ in args))
    except Exception as exc:
        detail = first_line(exc, 300)
        raise ModelLoadError(f"torch.export could not capture the model ({detail}); save it as a factory instead.") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.export.save(program, str(path))
    return path


def sample_inputs(signature: Signature, batch: int = 2) -> tuple[Any, ...]:
    """Zero-free example inputs matching a signature (symbolic dims become ``batch``)."""
    import torch

    gen = torch.Generator().manual_seed(0)
    args = []
    for spec in signature.inputs:
        shape = [batch if isinstance(d, str) else d for d in spec.shape]
        if spec.dtype.startswith("int"):
            args.append(torch.randint(0, 2, shape, generator=gen, dtype=getattr(torch, spec.dtype)))
        else:
            args.append(torch.rand(shape, generator=gen, dtype=getattr(torch, spec.dtype)))
    return tuple(args)


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Silence the exporter's progress prints and its torch logger warnings (they go to the log)."""
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()) as captured:
            yield
    finally:
        exporter_log.setLevel(level)
    log.debug("exporter output: %s", captured.getvalue())


def load_torch(artifact: Artifact) -> Any:
    """The nn.Module of a torch model folder, or the module of a torch.export program (.pt2)."""
    if artifact.format.value == "torch_export":
        return load_exported(Path(artifact.path))
    return load_module(Path(artifact.path))


LAYERS = {"Linear": "torch.nn.Linear", "LSTM": "torch.nn.LSTM", "GRU": "torch.nn.GRU"}


DYNAMIC_DTYPES = ("qint8", "float16")


def apply_dynamic(module: Any, layers: list[str], dtype: str = "qint8") -> Any:
    """torch.ao dynamic quantization: int8 weights, activations quantized per call (x86 / ARM kernels)."""
    import torch

    # the names may come from a model folder's post_load recipe: only layer types and dtypes, never other attributes
    unknown = [n for n in layers if n not in LAYERS] + ([] if dtype in DYNAMIC_DTYPES else [dtype])
    if unknown:
        raise ModelLoadError(f"dynamic quantization of {unknown} is not possible; layers: {', '.join(LAYERS)}; "
                             f"dtypes: {', '.join(DYNAMIC_DTYPES)}.")
    types = {getattr(torch.nn, name) for name in layers}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notice
        return torch.ao.quantization.quantize_dynamic(module.eval(), types, dtype=getattr(torch, dtype))


def named_inputs(module: Any, sample: np.ndarray | dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One array is the model's only input ("input"); several are matched to forward()'s parameters."""
    import inspect

    if not isinstance(sample, dict):
        return {"input": sample}
    if len(sample) == 1:
        return {"input": next(iter(sample.values()))}
    params = [p for p in inspect.signature(module.forward).parameters if p in sample]
    if len(params) != len(sample):
        raise ModelLoadError(
            f"the data has inputs {sorted(sample)} but the model's forward() takes "
            f"{list(inspect.signature(module.forward).parameters)}; name the arrays 'x.<parameter>'."
        )
    return {p: sample[p] for p in params}


def torch_signature(module: Any, sample: np.ndarray | dict[str, np.ndarray]) -> Signature:
    import torch

    named = named_inputs(module, sample)
    args = [torch.from_numpy(np.ascontiguousarray(a[:2])) for a in named.values()]
    with torch.inference_mode():
        out = module.eval()(*args)
    outs = out if isinstance(out, (tuple, list)) else [out]
    return Signature(
        inputs=tuple(TensorSpec(n, (BATCH, *a.shape[1:]), str(a.dtype)) for n, a in named.items()),
        outputs=tuple(TensorSpec("output" if len(outs) == 1 else f"output_{i}", (BATCH, *o.shape[1:]),
                                 str(o.dtype).replace("torch.", "")) for i, o in enumerate(outs)),
    )


def inspect_torch(path: Path) -> dict[str, Any]:
    module = load_module(path)
    params = list(module.named_parameters())
    weights = [p for n, p in params if n.endswith("weight") and p.dim() >= 2]
    zeros = sum(int((w == 0).sum()) for w in weights)
    total = sum(w.numel() for w in weights)
    return {
        "parameters": sum(p.numel() for _, p in params),
        "weight_sparsity": round(zeros / total, 4) if total else 0.0,
        "layers": dict(Counter(type(m).__name__ for m in module.modules() if not list(m.children())).most_common()),
    }
