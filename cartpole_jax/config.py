"""Run configuration: one flat frozen dataclass, presets, TOML/--set loading and validation.

Every field is either *static* (shapes, sizes, counts, choices: changing it recompiles) or
*vmappable* (a float the compiled program takes as an input, so runs can differ in it inside
one call). Validation happens once, here, before anything is traced.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import tomllib

from .errors import UsageError


class ConfigError(UsageError):
    """A bad configuration value; its message is one line naming the field and the allowed range."""


@dataclass(frozen=True)
class Rule:
    """Allowed values of a field: a numeric range, or a set of choices."""

    kind: type
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    choices: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if self.kind is bool:
            return "true or false"
        lo = "-inf" if self.lo is None else _fmt(self.lo)
        hi = "inf" if self.hi is None else _fmt(self.hi)
        left = "(" if self.lo_open or self.lo is None else "["
        right = ")" if self.hi_open or self.hi is None else "]"
        noun = {int: "an integer", float: "a finite number"}.get(self.kind, self.kind.__name__)
        return f"{noun} in {left}{lo}, {hi}{right}"


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)


def _field(default: Any, doc: str, rule: Rule, *, vmap: bool = False, unit: str = "") -> Any:
    meta = {"doc": doc, "rule": rule, "vmap": vmap, "unit": unit}
    return field(default=default, metadata=meta)


def _int(lo: int | None = None, hi: int | None = None) -> Rule:
    return Rule(int, lo, hi)


def _float(lo=None, hi=None, lo_open=False, hi_open=False) -> Rule:
    return Rule(float, lo, hi, lo_open, hi_open)


def _choice(*choices: str) -> Rule:
    return Rule(str, choices=choices)


MAX_INT = 2**31 - 1  # the compiled loop counts env steps in int32
FLOAT32_MAX = float(np.finfo(np.float32).max)  # vmappable values enter the program as float32
LAYERS = Rule(tuple)  # hidden_sizes: checked by hand
KWARGS = Rule(dict)  # optimizer_kwargs: checked by hand
BOOL = Rule(bool)


@dataclass(frozen=True)
class Config:
    """Everything that defines a training run. Units are per seed unless said otherwise."""

    # --- static: sizes and counts (a change recompiles) ---
    total_env_steps: int = _field(40_000, "Env steps to train for, per seed (rounded up to a multiple of num_envs).", _int(1, MAX_INT), unit="env steps")
    num_envs: int = _field(4, "Parallel CartPole envs per seed; one env step of each counts as one env step.", _int(1, 1 << 20), unit="envs")
    buffer_size: int = _field(50_000, "Replay capacity per seed; the oldest transitions are overwritten first.", _int(1, MAX_INT), unit="transitions")
    batch_size: int = _field(32, "Transitions per gradient step (at most buffer_size).", _int(1, MAX_INT), unit="transitions")
    learning_starts: int = _field(1_000, "Env steps collected before the first gradient step (and before an exponential epsilon starts to decay).", _int(0, MAX_INT), unit="env steps")
    train_every: int = _field(2, "Env steps per gradient step; with num_envs > train_every several gradient steps follow each vector step.", _int(1, MAX_INT), unit="env steps")
    n_step: int = _field(5, "Rewards summed before bootstrapping: targets are r_t + ... + gamma^(n-1) r_(t+n-1) + gamma^n Q(s_(t+n)), stopping early where an episode ends.", _int(1, 1_000), unit="env steps")
    target_update_every: int = _field(0, "Env steps between target-network updates; 0 updates it after every gradient step.", _int(0, MAX_INT), unit="env steps")
    hidden_sizes: tuple[int, ...] = _field((32, 32), "Widths of the Q-network's hidden layers.", LAYERS, unit="units")
    activation: str = _field("relu", "Hidden-layer activation.", _choice("relu", "tanh", "elu", "gelu", "silu"))
    kernel_init: str = _field("lecun_normal", "Initialiser of the Q-network's weights.", _choice("lecun_normal", "he_uniform", "he_normal", "glorot_uniform", "orthogonal"))
    dueling: bool = _field(False, "Use a dueling head (value + mean-centred advantages).", BOOL)
    double_dqn: bool = _field(True, "Pick the next action with the online net, value it with the target net.", BOOL)
    loss: str = _field("mse", "TD loss: huber (delta 1) or mse (mean squared TD error).", _choice("huber", "mse"))
    optimizer: str = _field("adam", "Name of an optax optimizer taking learning_rate.", _choice("adam", "adamw", "rmsprop", "sgd", "radam", "nadam", "lamb", "lion", "adabelief", "yogi"))
    optimizer_kwargs: tuple = _field((), "Extra keyword arguments for the optax optimizer, e.g. {decay = 0.95, eps = 0.01}.", KWARGS)
    lr_schedule: str = _field("linear", "Learning-rate decay from learning_rate to learning_rate * lr_end_fraction over the gradient steps: linear, or cosine (slow at first, fast at the end).", _choice("linear", "cosine"))
    epsilon_schedule: str = _field("linear", "linear: eps_start to eps_end over eps_decay_steps from step 0; exponential: times eps_decay per env step from learning_starts.", _choice("linear", "exponential"))
    bootstrap_on_truncation: bool = _field(True, "Bootstrap from the final observation when an episode is cut at 500 steps (CartPole-v1's time limit is not a failure).", BOOL)
    eval_every: int = _field(2_000, "Env steps between greedy evaluations (plus one at the end).", _int(1, MAX_INT), unit="env steps")
    eval_episodes: int = _field(32, "Greedy episodes per evaluation, per seed.", _int(1, 1 << 16), unit="episodes")
    num_chunks: int = _field(10, "Compiled pieces the run is cut into; progress is shown and checkpoints taken between them.", _int(1, MAX_INT), unit="chunks")
    checkpoint_every: int = _field(3, "Chunks between checkpoints under RUN_DIR/checkpoints/ (`cartpole-jax resume` continues from the latest); 0 takes none except on Ctrl-C.", _int(0, MAX_INT), unit="chunks")
    keep_checkpoints: int = _field(2, "Most recent checkpoints kept.", _int(1, MAX_INT), unit="checkpoints")

    # --- vmappable: inputs of the compiled program ---
    learning_rate: float = _field(2e-2, "Initial optimizer step size.", _float(0, None, lo_open=True), vmap=True)
    lr_end_fraction: float = _field(0.0, "Learning rate at the last gradient step as a fraction of learning_rate (1 keeps it constant).", _float(0, 1), vmap=True)
    gamma: float = _field(0.998, "Discount factor.", _float(0, 1), vmap=True)
    tau: float = _field(0.01, "Step size of each target update: 1 copies the online net, smaller is Polyak averaging.", _float(0, 1, lo_open=True), vmap=True)
    max_grad_norm: float = _field(0.0, "Clip gradients to this global norm; 0 turns clipping off.", _float(0), vmap=True)
    eps_start: float = _field(1.0, "Exploration epsilon at the start.", _float(0, 1), vmap=True)
    eps_end: float = _field(0.05, "Exploration epsilon floor.", _float(0, 1), vmap=True)
    eps_decay_steps: float = _field(12_000, "Linear schedule: env steps from eps_start to eps_end.", _float(0, None, lo_open=True), vmap=True, unit="env steps")
    eps_decay: float = _field(0.999, "Exponential schedule: factor per env step.", _float(0, 1, lo_open=True), vmap=True)
    failure_reward: float = _field(1.0, "Reward stored for a step that ends the episode by failure (CartPole's own is 1).", _float(), vmap=True)

    def hyperparams(self) -> HyperParams:
        """The vmappable fields as a pytree of float32 scalars."""
        return HyperParams(**{n: np.float32(getattr(self, n)) for n in VMAP_FIELDS})

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/TOML-ready values (lists and tables instead of tuples)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["hidden_sizes"] = list(self.hidden_sizes)
        out["optimizer_kwargs"] = dict(self.optimizer_kwargs)
        return out

    def static_key(self) -> tuple:
        """The static fields' values: two configs with equal keys share one compiled program."""
        return tuple(getattr(self, n) for n in STATIC_FIELDS)

    def program_key(self) -> tuple:
        """static_key without HOST_FIELDS: what the compiled program itself is made of."""
        return tuple(getattr(self, n) for n in STATIC_FIELDS if n not in HOST_FIELDS)

    @property
    def num_vector_steps(self) -> int:
        return -(-self.total_env_steps // self.num_envs)

    @property
    def chunk_len(self) -> int:
        """Vector steps per compiled chunk (the last chunk is padded with no-op steps)."""
        return -(-self.num_vector_steps // self.num_chunks)

    @property
    def num_evals(self) -> int:
        """Evaluations per run: one per eval_every boundary crossed, plus one after the last step."""
        n, e, t = self.num_envs, self.eval_every, self.num_vector_steps
        last_crosses = (t * n) // e != ((t - 1) * n) // e
        return (t * n) // e + (0 if last_crosses else 1)


FIELDS = {f.name: f for f in dataclasses.fields(Config)}
VMAP_FIELDS = tuple(n for n, f in FIELDS.items() if f.metadata["vmap"])
STATIC_FIELDS = tuple(n for n, f in FIELDS.items() if not f.metadata["vmap"])
HOST_FIELDS = ("checkpoint_every", "keep_checkpoints")  # static, but only the host loop reads them (tested)
SOLVED_RETURN = 475.0



class HyperParams(NamedTuple):
    """The vmappable fields: float32 scalars, or arrays with a leading run axis when batched.

    A NamedTuple, which jax takes as a pytree as it is: importing the config imports no jax, so the
    CLI parses and validates in a fraction of a second.
    """

    learning_rate: Any
    lr_end_fraction: Any
    gamma: Any
    tau: Any
    max_grad_norm: Any
    eps_start: Any
    eps_end: Any
    eps_decay_steps: Any
    eps_decay: Any
    failure_reward: Any


# Why the defaults. First on CPU (16-32 seeds), then measured on 256-512 seeds per point
# (benchmarks/reliability_sweep.py; results and commands in benchmarks/results/tuning/). Multi-step
# returns were the first step change: with 1-step targets and a fast Polyak target (tau 0.1) the
# Q-values climbed far past their ceiling and solved seeds fell apart; with 3-step returns a slow
# target (tau 0.01) learns as fast and holds. The second was the horizon: at gamma 0.99, 84% of 256
# seeds ended solved (likely because a cart drifting out of bounds fails hundreds of steps later,
# beyond a 100-step horizon); 0.995 gave 94.5%, 0.998 with epsilon over 12k env steps and Adam at
# 1.5e-2 97.7% of 512 (GPU). Third, 5-step returns instead of 3: 380 of 384 seeds (99.0%, CPU) end
# solved and the median first solve moves from 10k to 8k env steps (likely because the failure
# signal travels 5 steps per update, and returns of the epsilon-greedy behaviour keep the greedy
# policy a margin from the edges). At gamma 0.99 on 16-32 seeds 5 steps had looked less stable than
# 3; at 0.998 on hundreds of seeds it is the better of the two, and 8-step returns gave 251/256 where
# 5-step gave 253/256 on the same seeds. Against these baselines the following moved the rate by a
# few seeds or made it worse: 16/24/64-wide layers, batch 256, one update per 3-4 env steps, 8 envs,
# Huber (its unit slope crawls on ~100-500-sized Q-values), 2-step returns, no double DQN, gradient
# clipping, a 25% learning-rate floor, SiLU. At 30k env steps a cosine learning-rate decay did no
# better than linear (117-124 of 128), and 5-step returns left seeds that never solved (117-124 of
# 128), so the run keeps 40k. Fourth, batch 64 instead of 128: the gradient steps are the run's cost
# and their matmuls scale with the batch, so a seed trains 1.25-1.45x faster on CPU, while 379 of 384
# seeds (98.7%) end solved against 507 of 512 (99.0%) with batch 128; on the 128 seeds both ran
# (7000-7127), 125 against 127: a seed or two, within the spread between seed sets (with the random
# draws merged per step, the same distributions, 255 of seeds 7000-7255 end solved). One 64-wide
# hidden layer (cheaper still) ended solved on only 111 of those 128. Fifth, batch 32 with Adam at
# 2e-2: on seeds 7000-7511 it ends solved on 504 of 512 (98.4%) where batch 64 at 1.5e-2 ends solved
# on 505 (both with CPU's thin-layer sums, kernels.py), and 512 runs train in 277 s instead of
# 391 s; the median first solve moves from 8k to 10k env steps. At batch 32, Adam at 1e-2 lost 10 of
# 128 seeds (1.5e-2: 2, 2e-2: 1, 2.5e-2: 2); the same samples as one update of 128 per 4 env steps
# lost 10-11. The learning rate decays linearly to 0 so late updates are small; the epsilon floor
# is 0.05.
PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    # The classic Keras tutorial, reproduced field by field.
    "seed-tutorial": dict(
        total_env_steps=50_000, num_envs=1, buffer_size=2_000, batch_size=128, learning_starts=1_000,
        train_every=1, target_update_every=0, tau=1.0, n_step=1, hidden_sizes=(512, 256, 64), activation="relu",
        kernel_init="he_uniform", dueling=False, double_dqn=False, loss="mse", optimizer="rmsprop",
        optimizer_kwargs={"decay": 0.95, "eps": 0.01, "eps_in_sqrt": False}, learning_rate=2.5e-4,
        lr_end_fraction=1.0, gamma=0.95, epsilon_schedule="exponential", eps_start=1.0, eps_end=0.001,
        eps_decay=0.999, failure_reward=-100.0, bootstrap_on_truncation=False, max_grad_norm=0.0,
        eval_every=2_500,
    ),
    # purejaxrl's DQN hyperparameters, for like-for-like speed comparisons.
    "purejaxrl": dict(
        total_env_steps=500_000, num_envs=10, buffer_size=10_000, batch_size=128, learning_starts=10_000,
        train_every=10, target_update_every=500, tau=1.0, n_step=1, hidden_sizes=(120, 84), activation="relu",
        kernel_init="lecun_normal", dueling=False, double_dqn=False, loss="mse", optimizer="adam",
        optimizer_kwargs={}, learning_rate=2.5e-4, lr_end_fraction=1.0, gamma=0.99,
        epsilon_schedule="linear", eps_start=1.0, eps_end=0.05, eps_decay_steps=250_000,
        max_grad_norm=0.0, eval_every=25_000,
    ),
}


def _coerce(name: str, value: Any) -> Any:
    """Convert a TOML/--set value to the field's type, or raise ConfigError."""
    rule: Rule = FIELDS[name].metadata["rule"]
    bad = ConfigError(f"{name} must be {rule.describe()}; got {value!r}")
    if rule.kind is tuple:
        items = value if isinstance(value, (list, tuple)) else None
        if items is None or not all(isinstance(v, int) and not isinstance(v, bool) for v in items):
            raise ConfigError(f"{name} must be a list of positive integers such as [64, 64]; got {value!r}")
        return tuple(items)
    if rule.kind is dict:  # stored as sorted (key, value) pairs so the config stays hashable
        if isinstance(value, (list, tuple)) and all(isinstance(p, (list, tuple)) and len(p) == 2 for p in value):
            value = dict(value)
        if not isinstance(value, dict) or not all(isinstance(v, (int, float, bool, str)) for v in value.values()):
            raise ConfigError(f"{name} must be a table of scalars such as {{decay = 0.95}}; got {value!r}")
        return tuple(sorted(value.items()))
    if rule.kind is bool:
        if isinstance(value, bool):
            return value
        raise bad
    if rule.kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if not isinstance(value, float) or not value.is_integer():
            raise ConfigError(f"{name} must be {rule.describe()} (a whole number); got {value!r}")
        return int(value)
    if rule.kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        try:
            return float(value)
        except OverflowError:  # a TOML integer too large for a float
            raise bad from None
    if not isinstance(value, str):
        raise bad
    return value


def _check_range(name: str, value: Any) -> None:
    rule: Rule = FIELDS[name].metadata["rule"]
    bad = ConfigError(f"{name} must be {rule.describe()}; got {value!r}")
    if rule.choices:
        if value not in rule.choices:
            hint = difflib.get_close_matches(str(value), rule.choices, n=1)
            raise ConfigError(f"{name} must be {rule.describe()}; got {value!r}" + (f" (did you mean {hint[0]!r}?)" if hint else ""))
        return
    if rule.kind in (int, float):
        if isinstance(value, float) and not math.isfinite(value):
            raise bad
        if rule.lo is not None and (value < rule.lo or (rule.lo_open and value == rule.lo)):
            raise bad
        if rule.hi is not None and (value > rule.hi or (rule.hi_open and value == rule.hi)):
            raise bad


def check_value(name: str, value: Any) -> Any:
    """One field's value coerced to its type and checked against its own range (not its relations)."""
    value = _coerce(name, value)
    _check_range(name, value)
    return value


def validate(cfg: Config) -> Config:
    """Check every field and the relations between them; return cfg or raise ConfigError."""
    cfg = apply(cfg, {})
    for name in FIELDS:
        _check_range(name, getattr(cfg, name))
    if not cfg.hidden_sizes or any(h < 1 or h > 65_536 for h in cfg.hidden_sizes):
        raise ConfigError(f"hidden_sizes must be a non-empty list of integers in [1, 65536]; got {list(cfg.hidden_sizes)}")
    if cfg.batch_size > cfg.buffer_size:
        raise ConfigError(f"batch_size must be in [1, buffer_size={cfg.buffer_size}]; got {cfg.batch_size}")
    if cfg.num_envs > cfg.buffer_size:
        raise ConfigError(f"num_envs must be in [1, buffer_size={cfg.buffer_size}] so one vector step fits the buffer; got {cfg.num_envs}")
    lag = (cfg.n_step - 1) * cfg.num_envs  # newest transitions whose n-step successors are not yet stored
    if lag >= min(cfg.buffer_size, max(cfg.learning_starts, cfg.batch_size)):
        most = -(-min(cfg.buffer_size, max(cfg.learning_starts, cfg.batch_size)) // cfg.num_envs)
        raise ConfigError(f"n_step must be in [1, {most}] so that (n_step - 1) * num_envs stays below buffer_size and "
                          f"max(learning_starts, batch_size); got {cfg.n_step}")
    steps = cfg.num_vector_steps * cfg.num_envs
    if steps > MAX_INT:
        most = MAX_INT // cfg.num_envs * cfg.num_envs
        raise ConfigError(f"total_env_steps must be in [1, {most}]: it is rounded up to a multiple of num_envs={cfg.num_envs}, "
                          f"and {cfg.total_env_steps} rounds up to {steps}, past the limit of {MAX_INT}")
    if cfg.learning_starts >= steps:
        raise ConfigError(f"learning_starts must be in [0, total_env_steps={steps}) so that some learning happens; got {cfg.learning_starts}")
    if cfg.num_chunks > cfg.num_vector_steps:
        raise ConfigError(f"num_chunks must be in [1, {cfg.num_vector_steps}] (one vector step per chunk at least); got {cfg.num_chunks}")
    check_hyperparams({n: getattr(cfg, n) for n in VMAP_FIELDS})
    _check_optimizer(cfg)
    return cfg


def check_hyperparams(values: dict[str, float]) -> None:
    """The checks on vmappable values beyond their ranges: float32 overflow, and eps_end <= eps_start."""
    for name, value in values.items():
        if abs(value) > FLOAT32_MAX:  # the compiled program takes them as float32: they would become inf
            raise ConfigError(f"{name} must be within float32's range (|x| <= {FLOAT32_MAX:.4g}); got {value!r}")
    if values.get("eps_end", 0.0) > values.get("eps_start", 1.0):
        raise ConfigError(f"eps_end must be in [0, eps_start={values['eps_start']}]; got {values['eps_end']}")


def _check_optimizer(cfg: Config) -> None:
    if not cfg.optimizer_kwargs:  # the name is one of the choices; optax (and jax) load only to check kwargs
        return
    import inspect

    import optax

    params = inspect.signature(getattr(optax, cfg.optimizer)).parameters
    for key, value in cfg.optimizer_kwargs:
        if key not in params or key == "learning_rate":
            allowed = sorted(p for p in params if p != "learning_rate")
            raise ConfigError(f"optimizer_kwargs.{key} is not an argument of optax.{cfg.optimizer}; allowed: {', '.join(allowed)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"optimizer_kwargs.{key} must be finite; got {value!r}")
    for key, value in cfg.optimizer_kwargs:  # one at a time, so the error names the culprit
        why = _probe_optimizer(cfg.optimizer, ((key, value),))
        if why:
            raise ConfigError(f"optimizer_kwargs.{key}: optax.{cfg.optimizer} fails with {key}={value!r} ({why})")
    why = _probe_optimizer(cfg.optimizer, cfg.optimizer_kwargs)
    if why:
        raise ConfigError(f"optimizer_kwargs: optax.{cfg.optimizer} fails with {dict(cfg.optimizer_kwargs)} ({why})")


@functools.lru_cache(maxsize=256)
def _probe_optimizer(name: str, kwargs: tuple) -> str | None:
    """Build the optimizer and trace one init + update on a tiny tree (shapes only, no device needed).

    A kwarg of the wrong type passes optax's constructor and fails only inside the compiled program,
    after the run directory is written; tracing here catches it first. Returns why it failed, or None.
    """
    import jax
    import optax

    params = {"w": jax.ShapeDtypeStruct((2,), np.float32)}

    def step(p):
        tx = getattr(optax, name)(learning_rate=1e-3, **dict(kwargs))
        return tx.update(p, tx.init(p), p)

    try:
        jax.eval_shape(step, params)
    except Exception as err:  # optax raises TypeError, ValueError, ... for a bad argument
        first = (str(err).strip().splitlines() or [""])[0][:120]
        return f"{type(err).__name__}: {first}" if first else type(err).__name__
    return None


def _unknown(key: str) -> ConfigError:
    hint = difflib.get_close_matches(key, FIELDS, n=1)
    return ConfigError(f"unknown config key {key!r}" + (f" (did you mean {hint[0]!r}?)" if hint else ""))


def parse_value(text: str) -> Any:
    """Parse one --set/--grid value with TOML syntax, falling back to a bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_assignment(text: str, param: str = "set") -> tuple[str, str]:
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key or not value.strip():
        raise ConfigError(f"expects KEY=VALUE; got {text!r}", param)
    if key not in FIELDS:
        raise _unknown(key)
    return key, value.strip()


def apply(cfg: Config, changes: dict[str, Any]) -> Config:
    """Return cfg with changes applied, each coerced to its field's type."""
    for key in changes:
        if key not in FIELDS:
            raise _unknown(key)
    merged = {**{n: getattr(cfg, n) for n in FIELDS}, **changes}
    return cfg.replace(**{k: _coerce(k, v) for k, v in merged.items()})


def load_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file", "config") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read it ({err.__class__.__name__})", "config") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML ({err})", "config") from None
    return data


def resolve(preset: str | None = None, config_file: str | Path | None = None, sets: list[str] = ()) -> tuple[str, Config]:
    """Preset (--preset, else the file's `preset` key, else default), then the file, then each --set."""
    file_data = load_toml(config_file) if config_file else {}
    file_preset = file_data.pop("preset", "default")
    preset = file_preset if preset is None else preset
    if preset not in PRESETS:
        hint = difflib.get_close_matches(str(preset), PRESETS, n=1)
        raise ConfigError(f"preset must be one of {', '.join(PRESETS)}; got {preset!r}" + (f" (did you mean {hint[0]!r}?)" if hint else ""))
    cfg = apply(Config(), PRESETS[preset])
    cfg = apply(cfg, file_data)
    for text in sets:
        key, value = parse_assignment(text)
        cfg = apply(cfg, {key: parse_value(value)})
    return preset, validate(cfg)


def from_dict(data: dict[str, Any]) -> Config:
    """Rebuild a validated Config from to_dict() output (e.g. a run's config.json)."""
    return validate(apply(Config(), data))


def reference_markdown() -> str:
    """The config reference table, generated from the field docs (README keeps a copy, tested)."""
    rows = ["| key | kind | default | allowed | meaning |", "| --- | --- | --- | --- | --- |"]
    for name, f in FIELDS.items():
        rule: Rule = f.metadata["rule"]
        allowed = {tuple: "list of integers in [1, 65536]", dict: "TOML table"}.get(rule.kind) or rule.describe()
        default = json.dumps(Config().to_dict()[name])
        unit = f" ({f.metadata['unit']})" if f.metadata["unit"] else ""
        kind = "vmappable" if f.metadata["vmap"] else "static"
        rows.append(f"| `{name}` | {kind} | `{default}` | {allowed} | {f.metadata['doc']}{unit} |")
    return "\n".join(rows)

