"""The search space of `cartpole-jax tune`: --space specs and [space] tables parsed into Dists, checked
against the fixed config, and static combinations (one compiled program each).

    >>> from cartpole_jax.tune.space import parse_space
    >>> space = parse_space(["learning_rate=log:1e-4:1e-1", "hidden_sizes=choice:[32,32],[64,64]"])
    >>> space["learning_rate"].kind, space["hidden_sizes"].choices
    ('log', ([32, 32], [64, 64]))

Imports neither jax nor Optuna (but for Dist.distribution), so a bad space fails before they load.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import FIELDS, VMAP_FIELDS, Config, ConfigError, apply, check_hyperparams, check_value, load_toml, parse_value, validate
from ..sweep import split_values

FORMS = "lo:hi, log:lo:hi, int:lo:hi or choice:a,b,..."
MAX_STATIC = 256  # static combinations in one space: each is a compiled program


@dataclass(frozen=True)
class Dist:
    """One searched config field: a float range (uniform or log), an int range, or a list of choices."""

    name: str
    kind: str  # "float", "log", "int" or "choice"
    lo: float = 0.0
    hi: float = 0.0
    choices: tuple = ()  # stored values (lists for hidden_sizes), in the order given

    @property
    def static(self) -> bool:
        return not FIELDS[self.name].metadata["vmap"]

    def spec(self) -> str:
        """The text form, as --space takes it."""
        if self.kind == "choice":
            return "choice:" + ",".join(show_value(v) for v in self.choices)
        return ("" if self.kind == "float" else f"{self.kind}:") + f"{show_value(self.lo)}:{show_value(self.hi)}"

    def labels(self) -> list:
        """Optuna's categorical choices: scalars as they are, lists and tables as JSON text."""
        return [json.dumps(v) if isinstance(v, (list, dict)) else v for v in self.choices]

    def value(self, param: Any) -> Any:
        """The config value of an Optuna parameter."""
        return self.choices[self.labels().index(param)] if self.kind == "choice" else param

    def extremes(self) -> list:
        """The values at the corners of the space (a relation between fields is checked there)."""
        return [min(self.choices), max(self.choices)] if self.kind == "choice" else [self.lo, self.hi]

    def distribution(self):
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if self.kind == "choice":
            return CategoricalDistribution(self.labels())
        if self.kind == "int":
            return IntDistribution(int(self.lo), int(self.hi))
        return FloatDistribution(self.lo, self.hi, log=self.kind == "log")


def show_value(v: Any) -> str:
    """A value as the space and trials.csv write it: strings bare, the rest as JSON."""
    return v if isinstance(v, str) else json.dumps(v)


def _bad(where: str, why: str) -> ConfigError:
    return ConfigError(f": {where}: {why}", "space")


def parse_spec(name: str, text: str) -> Dist:
    """One KEY=SPEC of --space as a Dist; raises ConfigError (param "space")."""
    where = f"{name}={text}"
    if name not in FIELDS:
        try:
            apply(Config(), {name: None})  # the shared "unknown config key ... (did you mean ...)"
        except ConfigError as err:
            raise _bad(where, str(err)) from None
    head, _, rest = text.partition(":")
    if head.strip() == "choice":
        return Dist(name, "choice", choices=_choices(name, rest, where))
    if not FIELDS[name].metadata["vmap"]:
        raise _bad(where, f"{name} is static (a new value compiles a new program): search it with choice:a,b,...")
    parts = [p.strip() for p in text.split(":")]
    kind, bounds = (parts[0], parts[1:]) if parts[0] in ("log", "int") else ("float", parts)
    if len(bounds) != 2:
        raise _bad(where, f"malformed; expected {FORMS}")
    lo, hi = (_bound(b, kind, where) for b in bounds)
    if kind == "log" and lo <= 0:
        raise _bad(where, f"a log range needs lo > 0; got lo={show_value(lo)}")
    if lo >= hi:
        raise _bad(where, f"empty range: lo must be < hi; got {show_value(lo)} >= {show_value(hi)}")
    for bound in (lo, hi):
        try:
            check_value(name, bound)
        except ConfigError as err:
            raise _bad(where, f"bound {show_value(bound)} is outside the field's range ({err})") from None
    return Dist(name, kind, lo, hi)


def _bound(text: str, kind: str, where: str) -> float:
    """A range bound: a finite number (a whole one for int:)."""
    try:
        value = float(text)
    except ValueError:
        raise _bad(where, f"bound {text!r} is not a number; expected {FORMS}") from None
    if not math.isfinite(value):
        raise _bad(where, f"bound {text!r} must be finite")
    if kind == "int":
        if not value.is_integer():
            raise _bad(where, f"int: bounds must be whole numbers; got {text!r}")
        return int(value)
    return value


def _choices(name: str, text: str, where: str) -> tuple:
    """The stored values of choice:a,b,...; each checked like --set, none twice."""
    try:
        items = [v.strip() for v in split_values(text)]
    except ValueError as err:
        raise _bad(where, f"malformed choice list ({err})") from None
    if not text.strip() or any(not v for v in items):
        raise _bad(where, "an empty choice; expected choice:a,b,...")
    out = []
    for item in items:
        try:
            value = apply(Config(), {name: check_value(name, parse_value(item))}).to_dict()[name]
        except ConfigError as err:
            raise _bad(where, str(err)) from None
        if value in out:
            raise _bad(where, f"choice {item} is listed twice")
        out.append(value)
    return tuple(out)


def parse_space(texts: Sequence[str], space_file: str | Path | None = None) -> dict[str, Dist]:
    """--space KEY=SPEC texts, then a --space-file's [space] table, as {field: Dist}; raises ConfigError."""
    entries = [_entry(t) for t in texts] + (load_space_file(space_file) if space_file else [])
    space: dict[str, Dist] = {}
    for name, spec in entries:
        if name in space:
            raise _bad(f"{name}={spec}", f"{name} is searched twice")
        space[name] = parse_spec(name, spec)
    if not space:
        raise ConfigError(": nothing to search; give KEY=SPEC with --space or a --space-file", "space")
    return space


def _entry(text: str) -> tuple[str, str]:
    name, sep, spec = text.partition("=")
    if not sep or not name.strip() or not spec.strip():
        raise ConfigError(f": expects KEY=SPEC with SPEC {FORMS}; got {text!r}", "space")
    return name.strip(), spec.strip()


def load_space_file(path: str | Path) -> list[tuple[str, str]]:
    """(field, spec) pairs from a TOML file's [space] table; an array value is a list of choices."""
    try:
        data = load_toml(path)
    except ConfigError as err:
        raise ConfigError(err.message, "space-file") from None
    table = data.get("space")
    if not isinstance(table, dict) or set(data) != {"space"}:
        raise ConfigError(f'{path}: expected one [space] table of KEY = "SPEC" (e.g. learning_rate = "log:1e-4:1e-1")', "space-file")
    out = []
    for name, spec in table.items():
        if isinstance(spec, list):
            spec = "choice:" + ",".join(show_value(v) for v in spec)
        elif not isinstance(spec, str):
            raise _bad(f"{name} = {spec!r}", f'in {path}: a spec is a string such as "{FORMS.split(",")[0]}" or an array of choices')
        out.append((name, spec))
    return out


def check_space(cfg: Config, space: dict[str, Dist]) -> None:
    """Every static combination validates with the fixed config, and every corner of the ranges passes the
    checks between vmappable fields (eps_end <= eps_start); raises ConfigError (param "space")."""
    static = [d for d in space.values() if d.static]
    if math.prod(len(d.choices) for d in static) > MAX_STATIC:
        raise ConfigError(f": the static choices make more than {MAX_STATIC} combinations (one compiled program each)", "space")
    for combo in itertools.product(*(d.choices for d in static)):
        values = dict(zip((d.name for d in static), combo, strict=True))
        try:
            validate(apply(cfg, values))
        except ConfigError as err:
            raise _bad(_label(values), str(err)) from None
    ranges = [d for d in space.values() if not d.static]
    base = {n: getattr(cfg, n) for n in VMAP_FIELDS}
    for combo in itertools.product(*(d.extremes() for d in ranges)):
        values = dict(zip((d.name for d in ranges), combo, strict=True))
        try:
            check_hyperparams({**base, **values})
        except ConfigError as err:
            raise _bad(_label(values), f"{err} (every point of the space must be a valid config)") from None


def _label(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={show_value(v)}" for k, v in values.items())


def static_configs(cfg: Config, space: dict[str, Dist]) -> list[Config]:
    """The fixed config with each static combination of the space: one compiled program each."""
    static = [d for d in space.values() if d.static]
    names = [d.name for d in static]
    return [apply(cfg, dict(zip(names, combo, strict=True))) for combo in itertools.product(*(d.choices for d in static))]


def trial_values(space: dict[str, Dist], params: dict[str, Any]) -> dict[str, Any]:
    """A trial's Optuna parameters as config values."""
    return {k: space[k].value(p) for k, p in params.items()}


def best_config(cfg: Config, space: dict[str, Dist], params: dict[str, Any]) -> Config:
    """The fixed config with a trial's searched values."""
    return validate(apply(cfg, trial_values(space, params)))
