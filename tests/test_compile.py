"""One compilation per training program: whatever num_chunks, and none at all for a rerun with other vmappable values.

Compilations are counted as JAX reports them: one `/jax/core/compile/backend_compile_duration` event per
real XLA compilation.
"""

import contextlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import monitoring

from cartpole_jax.config import Config
from cartpole_jax.core import actor
from cartpole_jax.core.types import METRIC
from cartpole_jax.driver import train_runs
from cartpole_jax.program import Program, pick_devices
from cartpole_jax.results import params_sha256

BACKEND_COMPILE = "/jax/core/compile/backend_compile_duration"
# a static config of its own, so that no other test in this process has compiled it already
CFG = Config(
    total_env_steps=1_200, num_envs=2, buffer_size=400, batch_size=32, learning_starts=200, hidden_sizes=(16, 16),
    eval_every=400, eval_episodes=3, num_chunks=4, checkpoint_every=0,
)
SEEDS = [0, 1]


@contextlib.contextmanager
def compilations():
    """Yields a list that fills with the names of the functions XLA compiles inside the block."""
    names: list[str] = []

    def listener(event, duration, **kwargs):
        if event == BACKEND_COMPILE:
            names.append(kwargs.get("fun_name", "?"))

    monitoring.register_event_duration_secs_listener(listener)
    try:
        yield names
    finally:
        monitoring.unregister_event_duration_listener(listener)


def test_the_counter_sees_compilations():
    with compilations() as names:
        f = jax.jit(lambda x: x * 3 + 1)
        f(jnp.arange(5))
        f(jnp.arange(5) + 1)  # same shapes: cached
        f(jnp.arange(6))  # new shape: compiled again
    assert names.count("jit(<lambda>)") == 2


def run_counting_compilations(cfg, seeds):
    """train_runs(cfg, seeds), recording XLA compilations inside Program.compile, inside each chunk call, and elsewhere."""
    phase = {"name": "outside"}
    counts: dict[str, list[str]] = {"outside": [], "compile": [], "chunk": []}
    chunk_calls = []
    original_compile, original_chunk = Program.compile, Program.chunk

    def compile_(self, *args):
        phase["name"] = "compile"
        try:
            return original_compile(self, *args)
        finally:
            phase["name"] = "outside"

    def chunk(self, *args):
        chunk_calls.append(args[-1])
        phase["name"] = "chunk"
        try:
            return original_chunk(self, *args)
        finally:
            phase["name"] = "outside"

    def listener(event, duration, **kwargs):
        if event == BACKEND_COMPILE:
            counts[phase["name"]].append(kwargs.get("fun_name", "?"))

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Program, "compile", compile_)
        mp.setattr(Program, "chunk", chunk)
        monitoring.register_event_duration_secs_listener(listener)
        try:
            result = train_runs(cfg, seeds)
        finally:
            monitoring.unregister_event_duration_listener(listener)
    return result, counts, chunk_calls


# One test, so that under pytest-xdist the program is compiled by one worker only.
def test_one_compilation_whatever_num_chunks_and_none_for_vmappable_changes():
    result, counts, chunk_calls = run_counting_compilations(CFG, SEEDS)
    assert chunk_calls == [0, 1, 2, 3]  # the chunk function ran num_chunks times...
    # ...but XLA compiled two programs, ahead of time: init and chunk (plus the scalar chunk index's conversion)
    programs = [n for n in counts["compile"] if n != "jit(convert_element_type)"]
    assert len(programs) == 2, counts
    assert counts["chunk"] == [], counts  # and nothing at all while the chunks ran
    assert result.compile_seconds > 0 and result.chunks_done == CFG.num_chunks

    # a second run that differs only in vmappable values reuses the compiled program and compiles nothing
    devices = pick_devices(None)
    program = Program.get(CFG, len(SEEDS), devices)
    changed = CFG.replace(learning_rate=3e-3, gamma=0.9, tau=0.5, eps_end=0.1, failure_reward=-1.0)
    assert Program.get(changed, len(SEEDS), devices) is program
    again, counts, chunk_calls = run_counting_compilations(changed, SEEDS)
    assert counts == {"outside": [], "compile": [], "chunk": []} and again.compile_seconds == 0.0
    assert chunk_calls == [0, 1, 2, 3]
    # the new values really reached the program: the runs changed
    assert all(params_sha256(a) != params_sha256(b) for a, b in zip(result.params, again.params, strict=True))
    eps = float(actor.epsilon(changed, changed.hyperparams(), 1_200))
    np.testing.assert_allclose(again.metrics[:, -1, METRIC["epsilon"]], eps, rtol=1e-6)  # the epsilon column follows the new eps_end
    assert not np.allclose(result.metrics[:, -1, METRIC["epsilon"]], eps)


def test_static_changes_get_their_own_program():
    devices = pick_devices(None)
    base = Program.get(CFG, len(SEEDS), devices)
    for change in ({"num_envs": 4}, {"hidden_sizes": (8,)}, {"num_chunks": 2}, {"double_dqn": False}):
        assert Program.get(CFG.replace(**change), len(SEEDS), devices) is not base, change
    assert Program.get(CFG, len(SEEDS) + 1, devices) is not base  # the run count is part of the shape
