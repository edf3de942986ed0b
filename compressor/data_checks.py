"""Data that cannot be right is refused before any work: non-finite inputs, labels that are not
class ids, limits larger than the data, constants and batch axes that do not fit the model.

Each check raises a one-line DataError (or ConfigError) naming the value and the fix. The checks
that need only the data run when the data is loaded; those that need the model (label range, input
names) run once the reference model is known.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from compressor.errors import ConfigError, DataError


def check_finite(name: str, arr: np.ndarray, where: str) -> None:
    """Refuse what a model cannot be fed: arrays that are not numbers (strings, objects), NaN or inf."""
    if arr.dtype.kind not in "biufc":
        raise DataError(
            f"{where}: input '{name}' holds {arr.dtype.name} values ({arr.dtype.kind!r} kind), not numbers; "
            f"a model is fed numeric arrays: encode the data first (token ids, pixel values) and store those."
        )
    if arr.dtype.kind not in "fc":
        return
    bad = ~np.isfinite(arr)
    if bad.any():
        first = np.unravel_index(int(np.argmax(bad)), arr.shape)
        raise DataError(
            f"{where}: input '{name}' holds {int(bad.sum())} NaN/inf value(s) (first at index "
            f"{list(map(int, first))}); clean or drop those samples: a model's score on them means nothing."
        )


def check_class_labels(labels: np.ndarray, where: str) -> None:
    """Labels must be integer class ids >= 0 in a 1-D array, one per sample."""
    if labels.dtype.kind in "fc":
        if labels.size and np.all(np.isfinite(labels)) and np.all(labels == np.round(labels)):
            raise DataError(
                f"{where}: labels 'y' are stored as {labels.dtype} (integer-valued); store them as integers "
                f"(y.astype('int64')) so that class ids are not compared as floats."
            )
        raise DataError(
            f"{where}: labels 'y' are {labels.dtype} values such as {labels.flat[0]!r}, not class ids; "
            f"give integer class ids in [0, classes), or use metric cosine / mse (no labels) or a "
            f"'package.module:fn' metric for other targets."
        )
    if labels.dtype.kind not in "iu":
        raise DataError(f"{where}: labels 'y' have dtype {labels.dtype}; give integer class ids (int64).")
    if labels.ndim != 1:
        raise DataError(
            f"{where}: labels 'y' have shape {list(labels.shape)}; give one integer class id per sample (shape [N])."
        )
    if labels.size and labels.min() < 0:
        raise DataError(f"{where}: label {int(labels.min())} is negative; class ids run from 0 to classes - 1.")


def check_label_range(labels: np.ndarray, classes: int, output: str) -> None:
    """Every label must be a class of the model: 0 <= label < classes (the scored output's size)."""
    top = int(labels.max()) if labels.size else 0
    if top >= classes:
        raise DataError(
            f"evaluation label {top} is outside the model's {classes} classes (output '{output}' gives "
            f"scores for 0..{classes - 1}); check that 'y' holds this model's class ids, or score another output "
            f"(metric.outputs)."
        )


def check_limit(role: str, limit: int | None, available: int, split: str) -> None:
    """A limit the user wrote must fit the split: taking fewer samples silently is refused."""
    if limit is not None and limit > available:
        raise DataError(
            f"data.{role}.limit is {limit} but the '{split}' split has only {available} samples; "
            f"lower the limit to at most {available}, or give more data."
        )


def load_constants(constants: dict[str, Any], resolve: Any = Path) -> dict[str, np.ndarray]:
    """``data.constants`` as arrays: a number, a nested list, or ``{npz: file.npz, key: name}``."""
    arrays = {}
    for name, value in constants.items():
        ref = value if isinstance(value, dict) else {"npz": value.npz, "key": value.key} if hasattr(value, "npz") else None
        if ref is not None and "npz" in ref:
            arr = _constant_from_npz(name, Path(resolve(ref["npz"])), ref.get("key"))
        else:
            try:
                arr = np.asarray(value)
            except ValueError:  # a ragged nested list
                arr = np.asarray([], dtype=object)
            if arr.dtype.kind not in "biuf":
                raise ConfigError(
                    f"data.constants.{name} = {str(value)[:60]} is not a number or a rectangular nested "
                    f"list of numbers; give one, or {{npz: file.npz, key: name}}."
                )
        check_finite(name, arr, "data.constants")
        arrays[name] = arr
    return arrays


def open_npz(path: Path, what: str) -> Any:
    """An .npz archive, never unpickled; ``what`` names the setting that gave the path, for the error."""
    if not path.is_file():
        raise DataError(f"{what} '{path}' does not exist; check the path.")
    try:
        return np.load(path, allow_pickle=False)
    except Exception as exc:  # numpy raises several types for a bad archive
        raise DataError(f"{what} '{path}' is not a readable .npz ({exc}); re-save it with numpy.savez.") from None


def _constant_from_npz(name: str, path: Path, key: str | None) -> np.ndarray:
    archive = open_npz(path, f"data.constants.{name}: file")
    if key not in archive.files:
        raise DataError(
            f"data.constants.{name}: '{path}' has no array '{key}' (it has {archive.files}); set 'key' to one of them."
        )
    return archive[key]


def check_feeding_names(signature: Any, feeding: Any, data_inputs: list[str]) -> None:
    """Every constant names a model input, every batch axis an input or output within its rank."""
    inputs = {t.name: t for t in signature.inputs}
    outputs = {t.name: t for t in signature.outputs}
    for name in feeding.constants:
        if name not in inputs:
            raise ConfigError(
                f"data.constants names '{name}', which is not an input of the model (inputs: "
                f"{sorted(inputs)}); remove it or fix the name."
            )
        if name in data_inputs:
            raise ConfigError(
                f"input '{name}' is both in data.constants and a data array 'x.{name}'; keep one of them."
            )
    for name, axis in feeding.batch_axes.items():
        spec = inputs.get(name) or outputs.get(name)
        if spec is None:
            raise ConfigError(
                f"data.batch_axis names '{name}', which is neither an input nor an output of the model "
                f"(inputs {sorted(inputs)}, outputs {sorted(outputs)}); fix the name (data arrays: 'x.<input>')."
            )
        if name in feeding.constants:
            raise ConfigError(f"data.batch_axis names '{name}', a constant; constants are not batched, remove it.")
        if spec.shape and axis >= len(spec.shape):
            raise ConfigError(
                f"data.batch_axis.{name} = {axis} but '{name}' has {len(spec.shape)} axes {list(spec.shape)}; "
                f"give an axis below {len(spec.shape)}."
            )
