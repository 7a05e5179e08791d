"""Config validation: every field's rule, the cross-field checks, TOML and --set loading, presets, the README table."""

import json
import math
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from cartpole_jax import config
from cartpole_jax.config import FIELDS, PRESETS, STATIC_FIELDS, VMAP_FIELDS, Config, ConfigError, HyperParams, Rule, resolve, validate
from cartpole_jax.core import actor, learner
from cartpole_jax.core.network import make_network

README = Path(__file__).resolve().parents[1] / "README.md"
NUMERIC = [n for n, f in FIELDS.items() if f.metadata["rule"].kind in (int, float)]
CHOICE = [n for n, f in FIELDS.items() if f.metadata["rule"].choices]
BOOLS = [n for n, f in FIELDS.items() if f.metadata["rule"].kind is bool]


def rule(name: str) -> Rule:
    return FIELDS[name].metadata["rule"]


def check(**changes):
    return validate(config.apply(Config(), changes))


def own_rule_error(name: str, value) -> str | None:
    """The message if `name=value` breaks name's own rule; None if the rule accepts it (other checks may still object)."""
    try:
        check(**{name: value})
    except ConfigError as err:
        msg = str(err)
        return msg if msg.startswith(f"{name} must be {rule(name).describe()}") else None
    return None


def test_defaults_and_presets_validate():
    assert validate(Config()) == Config()
    for name in PRESETS:
        preset, cfg = resolve(name)
        assert preset == name
        assert config.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg  # a run's config.json rebuilds it exactly


def test_every_field_is_either_static_or_vmappable():
    assert set(STATIC_FIELDS) | set(VMAP_FIELDS) == set(FIELDS) and not set(STATIC_FIELDS) & set(VMAP_FIELDS)
    assert set(VMAP_FIELDS) == set(HyperParams._fields)
    assert all(rule(n).kind is float for n in VMAP_FIELDS)
    hp = Config().hyperparams()
    assert all(np.asarray(getattr(hp, n)).dtype == np.float32 for n in VMAP_FIELDS)
    a, b = Config(), Config(learning_rate=0.5, gamma=0.5, tau=0.5)
    assert a.static_key() == b.static_key() and a.static_key() != Config(num_envs=2).static_key()


@pytest.mark.parametrize("name", NUMERIC)
def test_numeric_rule(name):
    r = rule(name)
    for bad in (math.nan, math.inf, -math.inf):
        msg = own_rule_error(name, bad)
        assert msg and "\n" not in msg, (name, bad)
    step = 1 if r.kind is int else 1e-3
    if r.lo is not None:
        assert own_rule_error(name, r.lo - step), name
        assert bool(own_rule_error(name, r.lo)) == r.lo_open, name
        assert own_rule_error(name, r.lo + step) is None, name
    if r.hi is not None:
        assert own_rule_error(name, r.hi + step), name
        assert bool(own_rule_error(name, r.hi)) == r.hi_open, name
        assert own_rule_error(name, r.hi - step) is None, name
    if r.kind is int:
        with pytest.raises(ConfigError, match=rf"^{name} must be .*whole number.*1\.5"):
            check(**{name: 1.5})
        assert getattr(config.apply(Config(), {name: 3.0}), name) == 3  # TOML's 3.0 is a whole number
    for wrong in (True, "3", [3], None):
        with pytest.raises(ConfigError, match=rf"^{name} must be"):
            check(**{name: wrong})


@pytest.mark.parametrize("name", CHOICE)
def test_choice_rule(name):
    for choice in rule(name).choices:
        assert own_rule_error(name, choice) is None
    with pytest.raises(ConfigError, match=rf"^{name} must be one of .*; got 'nonsense'$"):
        check(**{name: "nonsense"})
    typo = rule(name).choices[-1][:-1] + "x"
    with pytest.raises(ConfigError, match=rf"did you mean '{rule(name).choices[-1]}'\?"):
        check(**{name: typo})
    with pytest.raises(ConfigError, match=rf"^{name} must be"):
        check(**{name: 1})


@pytest.mark.parametrize("name", BOOLS)
def test_bool_rule(name):
    assert getattr(check(**{name: True}), name) is True and getattr(check(**{name: False}), name) is False
    for wrong in (1, 0, 3, "true", None):
        with pytest.raises(ConfigError, match=rf"^{name} must be true or false; got"):
            check(**{name: wrong})


@pytest.mark.parametrize("value", [[], [0], [16, -1], [65_537], ["a"], [16, 1.5], [True], "big", 64, None])
def test_hidden_sizes_rejects(value):
    with pytest.raises(ConfigError, match=r"^hidden_sizes must be"):
        check(hidden_sizes=value)


def test_hidden_sizes_accepts():
    assert check(hidden_sizes=[1]).hidden_sizes == (1,)
    assert check(hidden_sizes=(65_536, 8, 8)).hidden_sizes == (65_536, 8, 8)


def test_optimizer_kwargs():
    assert check(optimizer="rmsprop", optimizer_kwargs={"eps": 0.01, "decay": 0.9}).optimizer_kwargs == (("decay", 0.9), ("eps", 0.01))
    with pytest.raises(ConfigError, match=r"^optimizer_kwargs\.foo is not an argument of optax\.adam; allowed: .*b1"):
        check(optimizer_kwargs={"foo": 1})
    with pytest.raises(ConfigError, match=r"^optimizer_kwargs\.learning_rate is not an argument"):  # set by learning_rate
        check(optimizer_kwargs={"learning_rate": 1.0})
    with pytest.raises(ConfigError, match=r"^optimizer_kwargs\.b1 must be finite"):
        check(optimizer_kwargs={"b1": math.nan})
    for wrong in ({"b1": {"x": 1}}, {"b1": [1]}, "x", 3):
        with pytest.raises(ConfigError, match=r"^optimizer_kwargs must be a table"):
            check(optimizer_kwargs=wrong)


@pytest.mark.parametrize(
    ("changes", "pattern"),
    [
        ({"batch_size": 600, "buffer_size": 500}, r"^batch_size must be in \[1, buffer_size=500\]; got 600$"),
        ({"num_envs": 600, "buffer_size": 500, "batch_size": 32}, r"^num_envs must be in \[1, buffer_size=500\]"),
        ({"learning_starts": 2_000, "total_env_steps": 2_000}, r"^learning_starts must be in \[0, total_env_steps=2000\)"),
        # total_env_steps is rounded up to whole vector steps: 1001 steps of 2 envs are 1002
        ({"learning_starts": 1_002, "total_env_steps": 1_001, "num_envs": 2}, r"^learning_starts must be in \[0, total_env_steps=1002\)"),
        ({"num_chunks": 11, "total_env_steps": 20, "num_envs": 2, "learning_starts": 0, "batch_size": 1, "n_step": 1},
         r"^num_chunks must be in \[1, 10\]"),
        ({"n_step": 4, "num_envs": 4, "learning_starts": 10, "batch_size": 8}, r"^n_step must be in \[1, 3\] so that"),
        ({"n_step": 2, "num_envs": 4, "learning_starts": 0, "batch_size": 4}, r"^n_step must be in \[1, 1\]"),
        ({"eps_start": 0.1, "eps_end": 0.5}, r"^eps_end must be in \[0, eps_start=0.1\]; got 0.5$"),
    ],
)
def test_cross_field_checks(changes, pattern):
    with pytest.raises(ConfigError, match=pattern):
        check(**changes)


@pytest.mark.parametrize(
    "changes",
    [
        {"batch_size": 500, "buffer_size": 500},
        {"num_envs": 500, "buffer_size": 500, "batch_size": 32, "n_step": 1},
        {"learning_starts": 1_001, "total_env_steps": 1_001, "num_envs": 2, "n_step": 1},
        {"num_chunks": 10, "total_env_steps": 20, "num_envs": 2, "learning_starts": 0, "batch_size": 1, "n_step": 1},
        {"n_step": 3, "num_envs": 4, "learning_starts": 10, "batch_size": 8},
        {"eps_start": 0.5, "eps_end": 0.5},
    ],
)
def test_cross_field_limits_are_inclusive_where_documented(changes):
    check(**changes)


def test_unknown_keys_suggest_the_nearest():
    with pytest.raises(ConfigError, match=r"^unknown config key 'gama' \(did you mean 'gamma'\?\)$"):
        config.apply(Config(), {"gama": 0.9})
    with pytest.raises(ConfigError, match=r"^unknown config key 'zzzzzz'$"):
        config.apply(Config(), {"zzzzzz": 1})
    with pytest.raises(ConfigError, match=r"^unknown config key 'learning_rat' \(did you mean 'learning_rate'\?\)$"):
        resolve(None, None, ["learning_rat=0.1"])


@pytest.mark.parametrize(
    ("text", "value"),
    [("1e-3", 1e-3), ("3", 3), ("[16, 16]", [16, 16]), ("true", True), ("adam", "adam"), ('"adam"', "adam"),
     ("{decay = 0.95}", {"decay": 0.95}), ("nan", math.nan), ("-inf", -math.inf)],
)
def test_parse_value_is_toml_with_bare_strings(text, value):
    got = config.parse_value(text)
    assert got == value or (isinstance(value, float) and math.isnan(value) and math.isnan(got))
    assert type(got) is type(value)


@pytest.mark.parametrize("text", ["gamma", "gamma=", "=0.9", " = ", "gamma=  "])
def test_malformed_set(text):
    with pytest.raises(ConfigError, match=r"^set expects KEY=VALUE; got"):
        config.parse_assignment(text)


def test_set_parsing_and_order():
    assert config.parse_assignment(" gamma = 0.9 ") == ("gamma", "0.9")
    assert config.parse_assignment("optimizer_kwargs={eps = 1e-3}") == ("optimizer_kwargs", "{eps = 1e-3}")
    _, cfg = resolve(None, None, ["gamma=0.5", "hidden_sizes=[8, 4]", "double_dqn=false", "optimizer=sgd", "gamma=0.25"])
    assert (cfg.gamma, cfg.hidden_sizes, cfg.double_dqn, cfg.optimizer) == (0.25, (8, 4), False, "sgd")  # the last --set wins


def test_toml_file_preset_and_precedence(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text(
        'preset = "seed-tutorial"\ngamma = 0.5\nhidden_sizes = [8, 8]\n'
        'optimizer = "rmsprop"\noptimizer_kwargs = { decay = 0.9, eps = 0.1 }\n'
    )
    preset, cfg = resolve(None, path)
    assert preset == "seed-tutorial"
    assert (cfg.gamma, cfg.hidden_sizes, cfg.buffer_size) == (0.5, (8, 8), PRESETS["seed-tutorial"]["buffer_size"])
    assert dict(cfg.optimizer_kwargs) == {"decay": 0.9, "eps": 0.1}
    preset, cfg = resolve("default", path, ["gamma=0.75"])  # --preset beats the file's preset; --set beats the file
    assert preset == "default" and cfg.gamma == 0.75 and cfg.buffer_size == Config().buffer_size and cfg.hidden_sizes == (8, 8)


@pytest.mark.parametrize(
    ("content", "pattern"),
    [
        (None, r"^config .*missing\.toml: no such file$"),
        ("gamma = \n", r"^config .*\.toml: not valid TOML"),
        (b"gamma = 0.5\n\xff\xfe\n", r"^config .*\.toml: cannot read it \(UnicodeDecodeError\)$"),
        ("gama = 0.5\n", r"^unknown config key 'gama' \(did you mean 'gamma'\?\)$"),
        ("[table]\ngamma = 0.5\n", r"^unknown config key 'table'"),
        ('preset = "seed-tutorail"\n', r"^preset must be one of .*; got 'seed-tutorail' \(did you mean 'seed-tutorial'\?\)$"),
        ("gamma = 2.0\n", r"^gamma must be a finite number in \[0, 1\]; got 2.0$"),
    ],
)
def test_bad_toml_files(tmp_path, content, pattern):
    path = tmp_path / ("missing.toml" if content is None else "bad.toml")
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=pattern):
        resolve(None, path)


def test_config_dir_is_not_a_file(tmp_path):
    with pytest.raises(ConfigError, match=r"^config .*: cannot read it"):
        resolve(None, tmp_path)


def test_unknown_preset():
    pattern = r"^preset must be one of default, seed-tutorial, purejaxrl.*; got 'purejax' \(did you mean 'purejaxrl'\?\)$"
    with pytest.raises(ConfigError, match=pattern):
        resolve("purejax")


def test_counts_beyond_int32_are_config_errors():
    """A run longer than the compiled program's int32 step counters must be refused, not overflow or crash later."""
    with pytest.raises(ConfigError, match=r"^total_env_steps must be"):
        check(total_env_steps=2**31)


@pytest.mark.parametrize("name", ["gamma", "total_env_steps"])
def test_huge_integers_are_config_errors(name):
    with pytest.raises(ConfigError, match=rf"^{name} must be"):
        check(**{name: 10**400})


# --- the seed-tutorial preset is the Keras CartPole DQN tutorial, field by field ---


@pytest.fixture(scope="module")
def tutorial() -> Config:
    return resolve("seed-tutorial")[1]


def test_seed_tutorial_values(tutorial):
    c = tutorial
    assert c.hidden_sizes == (512, 256, 64) and c.activation == "relu" and c.kernel_init == "he_uniform" and not c.dueling
    assert c.optimizer == "rmsprop" and c.learning_rate == 2.5e-4 and c.lr_end_fraction == 1.0 and c.max_grad_norm == 0.0
    assert dict(c.optimizer_kwargs) == {"decay": 0.95, "eps": 0.01, "eps_in_sqrt": False}  # Keras adds eps outside the sqrt
    assert c.loss == "mse" and not c.double_dqn and c.gamma == 0.95
    assert c.epsilon_schedule == "exponential" and c.eps_start == 1.0 and c.eps_decay == 0.999 and c.eps_end == 0.001
    assert (c.batch_size, c.buffer_size, c.learning_starts, c.train_every, c.num_envs) == (128, 2_000, 1_000, 1, 1)
    assert c.tau == 1.0 and c.target_update_every == 0  # the target is the online net after every step: no target network
    assert c.failure_reward == -100.0 and not c.bootstrap_on_truncation


def test_seed_tutorial_network_is_the_keras_mlp(tutorial):
    params = jax.jit(make_network(tutorial).init)(jax.random.key(0), jnp.zeros(4))["params"]
    shapes = [params[f"hidden_{i}"]["kernel"].shape for i in range(3)] + [params["q"]["kernel"].shape]
    assert shapes == [(4, 512), (512, 256), (256, 64), (64, 2)]
    k = np.asarray(params["hidden_0"]["kernel"])  # he_uniform: U(-sqrt(6 / fan_in), +sqrt(6 / fan_in))
    assert np.abs(k).max() <= math.sqrt(6 / 4) and np.abs(k).max() > 0.9 * math.sqrt(6 / 4)


def test_seed_tutorial_optimizer_is_keras_rmsprop(tutorial):
    """Two steps of Keras' RMSprop (rho 0.95, eps 0.01 outside the sqrt, velocity starting at 0), by hand."""
    tx = learner.make_optimizer(tutorial, tutorial.hyperparams())
    params = {"w": jnp.zeros(3)}
    state = tx.init(params)
    v = np.zeros(3)
    for g in (np.array([1.0, -2.0, 0.5]), np.array([0.3, 0.3, -4.0])):
        updates, state = tx.update({"w": jnp.asarray(g, jnp.float32)}, state, params)
        params = optax.apply_updates(params, updates)
        v = 0.95 * v + 0.05 * g**2
        np.testing.assert_allclose(updates["w"], -2.5e-4 * g / (np.sqrt(v) + 0.01), rtol=1e-5)


def test_seed_tutorial_epsilon_decays_per_step_after_learning_starts(tutorial):
    hp = tutorial.hyperparams()
    cases = [(0, 1.0), (1_000, 1.0), (1_001, 0.999), (1_100, 0.999**100), (10_000, max(0.001, 0.999**9_000)), (20_000, 0.001)]
    for step, expected in cases:
        np.testing.assert_allclose(actor.epsilon(tutorial, hp, step), expected, rtol=1e-4)


# --- the README's config reference is generated ---


def test_reference_markdown_lists_every_field_with_its_default():
    table = config.reference_markdown().splitlines()
    assert len(table) == 2 + len(FIELDS)
    for line, (name, f) in zip(table[2:], FIELDS.items(), strict=True):
        kind = "vmappable" if f.metadata["vmap"] else "static"
        assert line.startswith(f"| `{name}` | {kind} | `{json.dumps(Config().to_dict()[name])}` |")
        assert f.metadata["doc"] in line


def _readme_block() -> str | None:
    text = README.read_text() if README.exists() else ""
    m = re.search(r"^<!-- config-reference:start -->\n(.*?)\n?^<!-- config-reference:end -->$", text, re.S | re.M)
    return m.group(1) if m else None


@pytest.mark.skipif(_readme_block() is None, reason="README.md has no <!-- config-reference:start/end --> markers yet")
def test_readme_config_reference_is_current():
    hint = "regenerate with: python -c 'from cartpole_jax import config; print(config.reference_markdown())'"
    assert _readme_block().strip() == config.reference_markdown().strip(), hint
