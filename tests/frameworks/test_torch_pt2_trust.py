"""A .pt2 from elsewhere cannot make loading unpickle (and so run) anything without --trust-code."""
from __future__ import annotations

import json
import pickle
import zipfile
from fractions import Fraction
from pathlib import Path

import pytest
import torch

from compressor.code import TrustPolicy
from compressor.errors import UntrustedCodeError
from compressor.frameworks._torch import load_exported, pickled_parts


@pytest.fixture(scope="module")
def plain_pt2(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pt2") / "model.pt2"
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4)).eval()
    torch.export.save(torch.export.export(model, (torch.rand(2, 3),)), str(path))
    return path


def _rewrite(src: Path, dst: Path, change) -> Path:  # noqa: ANN001 - change(part, data) -> data
    with zipfile.ZipFile(src) as a, zipfile.ZipFile(dst, "w") as b:
        for name in a.namelist():
            b.writestr(name, change(name.split("/", 1)[-1], a.read(name)))
    return dst


def _pickled_weight(part: str, data: bytes) -> bytes:
    if part == "data/weights/model_weights_config.json":
        config = json.loads(data)
        next(iter(config["config"].values()))["use_pickle"] = True
        return json.dumps(config).encode()
    return data


def _unsafe_sample_inputs(part: str, data: bytes) -> bytes:
    return pickle.dumps(Fraction(1, 2)) if part.startswith("data/sample_inputs/") else data


def test_a_plain_program_loads(plain_pt2: Path) -> None:
    assert pickled_parts(plain_pt2) == []
    assert load_exported(plain_pt2)(torch.rand(2, 3)).shape == (2, 4)


@pytest.mark.parametrize("change, part", [(_pickled_weight, "data/weights/model_weights_config.json:0.weight"),
                                          (_unsafe_sample_inputs, "data/sample_inputs/model.pt")])
def test_pickled_parts_are_refused_without_trust(tmp_path: Path, plain_pt2: Path, change, part: str) -> None:
    bad = _rewrite(plain_pt2, tmp_path / "bad.pt2", change)
    assert pickled_parts(bad) == [part]
    with pytest.raises(UntrustedCodeError, match=r"holds pickled parts .* --trust-code") as err:
        load_exported(bad)
    assert "\n" not in str(err.value)
    with pytest.raises(UntrustedCodeError):
        load_exported(bad, TrustPolicy.of(["some.module:Factory"]))  # trusting a factory is not trusting pickles
