"""The search space of ``compressor search``: the pipeline's ``search:`` section read into parameters.

A key ``pass.name.setting`` (``prune.structured.sparsity``) sets that setting of every step of
that pass in the trial's template; a trial with several templates first picks one (``template``),
which is how the pass order is searched among given alternatives. A value is a range (two numbers
of which one is a float, or ``{low, high, log, step}``) or a list of choices (``{choices: [...]}``
for numbers that are not a range). The space is checked when the file is loaded: every key names
a pass of some template and a setting that pass takes, and every choice and both ends of every
range build a valid pass.

Sampling is asked of an object with Optuna's ``suggest_*`` methods, so this module imports no
Optuna and any sampler can drive it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from compressor.errors import ConfigError
from compressor.run.spec import ChoicesSpec, RangeSpec, SearchSpec, Step

TEMPLATE_PARAM = "template"
CHOICE_TYPES = (bool, int, float, str, type(None))


class Suggester(Protocol):
    """What sampling needs of a trial: Optuna's ``Trial`` has these."""

    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = None,
                      log: bool = False) -> float: ...

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int: ...

    def suggest_categorical(self, name: str, choices: list[Any]) -> Any: ...


@dataclass(frozen=True)
class Param:
    """One searched setting: ``key`` is 'pass.name.setting'."""

    key: str
    pass_name: str
    setting: str
    choices: tuple[Any, ...] | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    integer: bool = False

    def ends(self) -> list[Any]:
        """The values checked when the file is loaded: every choice, or both ends of the range."""
        if self.choices is not None:
            return list(self.choices)
        cast = int if self.integer else float
        return [cast(self.low), cast(self.high)]

    def suggest(self, trial: Suggester) -> Any:
        """Draw this setting's value for ``trial``."""
        if self.choices is not None:
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.integer:
            return trial.suggest_int(self.key, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.key, float(self.low), float(self.high), step=self.step, log=self.log)


def step_parts(step: Step) -> tuple[str, dict[str, Any]]:
    """(pass name, config) of a step written as a name or as {name: config}."""
    if isinstance(step, str):
        return step, {}
    name, config = next(iter(step.items()))
    return name, dict(config or {})


def _param(key: str, value: Any, pass_names: set[str]) -> Param:
    pass_name, _, setting = key.rpartition(".")
    if pass_name not in pass_names:
        known = ", ".join(sorted(pass_names))
        raise ConfigError(f"search.space key '{key}' names pass '{pass_name or key}', which no search template "
                          f"uses (templates use: {known}); write 'pass.name.setting' for one of them.")
    if isinstance(value, list):
        numbers = len(value) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        if numbers and any(isinstance(v, float) for v in value):
            value = RangeSpec(low=value[0], high=value[1])
        else:
            value = ChoicesSpec(choices=value)
    if isinstance(value, ChoicesSpec):
        bad = [v for v in value.choices if not isinstance(v, CHOICE_TYPES)]
        if bad:
            raise ConfigError(f"search.space '{key}' choice {bad[0]!r} is a {type(bad[0]).__name__}; choices are "
                              f"numbers, strings, booleans or null (search a list-valued setting with templates).")
        if len(set(map(repr, value.choices))) != len(value.choices):
            raise ConfigError(f"search.space '{key}' lists a choice twice ({value.choices}); give each once.")
        return Param(key, pass_name, setting, choices=tuple(value.choices))
    integer = all(float(v).is_integer() and isinstance(v, int) for v in (value.low, value.high)) and \
        (value.step is None or float(value.step).is_integer())
    return Param(key, pass_name, setting, low=value.low, high=value.high, log=value.log, step=value.step,
                 integer=integer)


def space_params(search: SearchSpec) -> list[Param]:
    """The searched settings, in the file's order; a key naming no template's pass is an error."""
    used = {step_parts(s)[0] for steps in search.templates.values() for s in steps}
    return [_param(key, value, used) for key, value in search.space.items()]


def apply_values(steps: list[Step], values: dict[str, Any]) -> list[Step]:
    """``steps`` with each searched setting written into every step of its pass."""
    out: list[Step] = []
    for step in steps:
        name, config = step_parts(step)
        for key, value in values.items():
            pass_name, _, setting = key.rpartition(".")
            if pass_name == name:
                config[setting] = value
        out.append({name: config} if config else name)
    return out


def sample(trial: Suggester, search: SearchSpec, params: list[Param]) -> tuple[str, list[Step], dict[str, Any]]:
    """(template, its steps with the drawn settings, the drawn settings) for one trial.

    Only the settings of passes in the chosen template are drawn: Optuna sees a space that depends
    on the template, which its samplers support.
    """
    names = list(search.templates)
    template = trial.suggest_categorical(TEMPLATE_PARAM, names) if len(names) > 1 else names[0]
    steps = search.templates[template]
    present = {step_parts(s)[0] for s in steps}
    values = {p.key: p.suggest(trial) for p in params if p.pass_name in present}
    return template, apply_values(steps, values), values


def check_search(search: SearchSpec, variants: dict[str, list[Any]], build: Any) -> list[Param]:
    """Refuse a search section that cannot run, before any work.

    ``build(label, steps)`` builds (and format-checks) a list of steps as the pipeline does; it is
    called for every template with every choice and both ends of every range of its settings.
    """
    params = space_params(search)
    for name in search.compare or []:
        if name not in variants:
            from compressor.errors import unknown_name

            raise unknown_name("search.compare variant", name, variants, "Name variants of this pipeline.")
    for template, steps in search.templates.items():
        build(f"search template '{template}'", steps)
        present = {step_parts(s)[0] for s in steps}
        for p in params:
            if p.pass_name not in present:
                continue
            for value in p.ends():
                build(f"search template '{template}' with {p.key} = {value!r}", apply_values(steps, {p.key: value}))
    return params
