"""ONNX side of a package: the manifest's facts in ``metadata_props``, and the ORT-format copy with
the operators a reduced ONNX Runtime build needs (onnxruntime's own converter tool)."""
from __future__ import annotations

import contextlib
import io
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from compressor.errors import ModelLoadError, first_line
from compressor.package.manifest import METADATA_KEY, canonical


def embed(path: Path, facts: dict[str, Any]) -> None:
    """Write ``facts`` into the ONNX file's ``metadata_props`` (and its name and version as plain keys)."""
    import onnx

    model = onnx.load(str(path))
    keep = [p for p in model.metadata_props if p.key not in (METADATA_KEY, "name", "version", "labels")]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    plain = {METADATA_KEY: canonical(facts), "name": facts["name"], "version": facts["version"]}
    if facts.get("labels"):
        plain["labels"] = ",".join(facts["labels"])
    for key, value in plain.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))


def platform(path: Path) -> str:
    """'any', or the CPU family the graph is bound to: NCHWc nodes (optimize.onnx level all, or an ORT
    file optimized for amd64) run on x86-64 only."""
    import onnx

    domains = {n.domain for n in onnx.load(str(path), load_external_data=False).graph.node}
    return "x86_64 (NCHWc nodes from an x86 optimization)" if "com.microsoft.nchwc" in domains else "any"


def read_embedded(path: Path) -> str | None:
    """The embedded facts' JSON text of an .onnx or .ort file, as ONNX Runtime reads them (None when absent)."""
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ModelLoadError(f"onnxruntime cannot load '{path.name}': {first_line(exc, 200)}") from None
    return session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)


def to_ort(onnx_path: Path, ort_path: Path, config_path: Path) -> None:
    """``ort_path`` (ORT format, optimized for any CPU: target_platform arm) and ``config_path`` (its
    operators by domain and opset, the input of a reduced build's --include_ops_by_config)."""
    from onnxruntime.tools.convert_onnx_models_to_ort import OptimizationStyle, convert_onnx_models_to_ort

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in" / ort_path.with_suffix(".onnx").name
        src.parent.mkdir()
        shutil.copyfile(onnx_path, src)
        quiet = logging.getLogger("ort_format_model.utils")
        level, quiet.level = quiet.level, logging.WARNING
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                convert_onnx_models_to_ort(src, output_dir=Path(tmp) / "out", optimization_styles=[OptimizationStyle.Fixed],
                                           target_platform="arm")
        finally:
            quiet.level = level
        made = Path(tmp) / "out" / ort_path.name
        configs = list((Path(tmp) / "out").glob("*.required_operators.config"))
        if not made.is_file() or len(configs) != 1:
            raise ModelLoadError(f"onnxruntime's ORT converter wrote no {ort_path.name} for '{onnx_path.name}'; "
                                 f"package without it (package.ort: false).")
        shutil.copyfile(made, ort_path)
        lines = [f"# - {ort_path.name}" if line.startswith("# - ") else line
                 for line in configs[0].read_text().splitlines()]  # not the temporary folder's path
        config_path.write_text("\n".join(lines) + "\n")
