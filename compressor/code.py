"""Code named by a string: the one place the tool imports a 'module:attr' it was given.

Two kinds of names reach it. Code the *user* named — in their pipeline file (``model.factory``, a
data factory, a metric function, a distillation ``student``) or on the command line — is theirs and
is loaded with ``load_attr``. Code named by a *model file* (the factory a torch model folder's
model.json records) may come from anyone: it is loaded only through ``load_recorded``, which asks the
``TrustPolicy`` in force first and imports nothing when the answer is no. The policy trusts every
name with ``--trust-code`` and otherwise only the names the user's own pipeline gave, so the folders
a run writes itself (they record the pipeline's factory) load, and a folder from elsewhere does not.
"""
from __future__ import annotations

import contextlib
import contextvars
import importlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from compressor.errors import ConfigError, UntrustedCodeError, did_you_mean


def load_attr(spec: str) -> Any:
    """Import ``"pkg.module:attr"`` and return the attribute (code the user named)."""
    module_name, _, attr = spec.partition(":")
    if not attr:
        raise ConfigError(f"'{spec}' is not of the form 'package.module:name'; write it so.")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"cannot import module '{module_name}' for '{spec}': {exc}. Check the dotted path "
            f"and that the package is installed."
        ) from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        names = [n for n in dir(module) if not n.startswith("_")]
        raise ConfigError(
            f"module '{module_name}' has no '{attr}'.{did_you_mean(attr, names)}"
        ) from None


@dataclass(frozen=True)
class TrustPolicy:
    """Which code a model file may name: every name (``trust_all``, --trust-code) or only ``specs``."""

    trust_all: bool = False
    specs: frozenset[str] = frozenset()

    @classmethod
    def of(cls, specs: Iterable[str | None], trust_all: bool = False) -> TrustPolicy:
        """The policy trusting ``specs`` (None entries are skipped), or everything with ``trust_all``."""
        return cls(trust_all, frozenset(s for s in specs if s))

    def allows(self, spec: str) -> bool:
        """Whether a model file may make the tool import and call ``spec``."""
        return self.trust_all or spec in self.specs

    def union(self, other: TrustPolicy) -> TrustPolicy:
        """What either policy trusts."""
        return TrustPolicy(self.trust_all or other.trust_all, self.specs | other.specs)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form, for a worker process."""
        return {"trust_all": self.trust_all, "specs": sorted(self.specs)}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> TrustPolicy:
        """The policy ``to_dict`` wrote; trust nothing when ``data`` is None."""
        data = data or {}
        return cls.of(data.get("specs", []), bool(data.get("trust_all", False)))


_POLICY: contextvars.ContextVar[TrustPolicy] = contextvars.ContextVar("compressor_trust", default=TrustPolicy())


def current_trust() -> TrustPolicy:
    """The policy in force: the innermost ``trusting`` block's, else trust nothing."""
    return _POLICY.get()


@contextlib.contextmanager
def trusting(policy: TrustPolicy) -> Iterator[TrustPolicy]:
    """Load model files under ``policy`` inside the block (a run, a CLI command, a worker)."""
    token = _POLICY.set(policy)
    try:
        yield policy
    finally:
        _POLICY.reset(token)


def check_recorded(spec: str, source: str, field: str, trust: TrustPolicy | None = None) -> str:
    """``spec`` when the policy lets a model file name it; UntrustedCodeError (nothing imported) otherwise.

    ``source`` says which file named it ("model folder 'x'") and ``field`` where ("its model.json factory").
    """
    policy = trust if trust is not None else current_trust()
    if not isinstance(spec, str) or not policy.allows(spec):
        noun = source.split(" '")[0].split()[-1]
        raise UntrustedCodeError(
            f"{source} names code {spec!r} ({field}); compressor runs code from a model file only with "
            f"--trust-code: pass it if you trust this {noun}."
        )
    return spec


def load_recorded(spec: str, source: str, field: str, trust: TrustPolicy | None = None) -> Any:
    """Import the ``module:attr`` a model file names, after the trust check (see ``check_recorded``)."""
    return load_attr(check_recorded(spec, source, field, trust))
