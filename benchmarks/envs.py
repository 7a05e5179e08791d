"""Env-only throughput: random actions with auto-reset, for our batched env, gymnax and gymnasium.

Each JAX runner compiles a `lax.scan` of `scan_len` vector steps (ahead of time, so compiling is
timed apart) and a repeat calls it enough times to last about `target_seconds`. The carry holds the
observations, as an agent would need them, so neither JAX impl can skip computing them.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import jax
import numpy as np

from cartpole_jax.core import env as cp_env

from .timing import calls_for, record, seconds

IMPLS = ("cartpole_jax", "gymnax", "gymnasium_vector", "gymnasium_sync")
SYNC_MAX_ENVS = 1024  # SyncVectorEnv steps one Python env at a time: larger sizes take minutes


def scan_len(num_envs: int) -> int:
    """Vector steps per compiled call: about 2^17 env steps, between 4 and 4096 vector steps."""
    return int(min(4096, max(4, (1 << 17) // num_envs)))


def _cartpole_jax(num_envs: int):
    """(init carry, step fn) for our batched env: one key per batch, finished envs reset by `where`."""

    def step(carry, _):
        key, state, _obs = carry
        key, k_act, k_env = jax.random.split(key, 3)
        action = jax.random.randint(k_act, (num_envs,), 0, cp_env.NUM_ACTIONS)
        state, res = cp_env.step(k_env, state, action)
        return (key, state, res.obs), None

    obs, state = cp_env.reset(jax.random.key(1), num_envs)
    return (jax.random.key(0), state, obs), step


def _gymnax(num_envs: int):
    """(init carry, step fn) for gymnax CartPole-v1 vmapped as its README shows, keys split per env.

    gymnax 1.0 steps return (obs, state, reward, terminated, truncated, info); its step auto-resets.
    """
    import gymnax

    env, params = gymnax.make("CartPole-v1")
    vstep = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    def step(carry, _):
        key, state, _obs = carry
        key, k_act, k_env = jax.random.split(key, 3)
        action = jax.random.randint(k_act, (num_envs,), 0, env.num_actions)
        obs, state, *_ = vstep(jax.random.split(k_env, num_envs), state, action, params)
        return (key, state, obs), None

    obs, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(jax.random.key(1), num_envs), params)
    return (jax.random.key(0), state, obs), step


JAX_IMPLS = {"cartpole_jax": _cartpole_jax, "gymnax": _gymnax}


def jax_runner(impl: str, num_envs: int, length: int) -> tuple[Callable, object, float]:
    """(compiled call carry -> carry, initial carry, compile seconds)."""
    carry, step = JAX_IMPLS[impl](num_envs)
    run = jax.jit(lambda c: jax.lax.scan(step, c, None, length)[0], donate_argnums=0)
    t0 = time.perf_counter()
    compiled = run.lower(carry).compile()
    return compiled, carry, time.perf_counter() - t0


def bench_jax(impl: str, num_envs: int, repeats: int, target_seconds: float) -> dict:
    length = scan_len(num_envs)
    call, carry, compile_s = jax_runner(impl, num_envs, length)
    box = [carry]

    def calls(k: int) -> None:
        c = box[0]
        for _ in range(k):
            c = call(c)
        box[0] = jax.block_until_ready(c)

    warm = seconds(lambda: calls(1))  # first run: allocation and caches, not part of the figure
    k = calls_for(seconds(lambda: calls(1)), target_seconds)
    times = [seconds(lambda: calls(k)) for _ in range(repeats)]
    return record("env", impl, k * length * num_envs, times, num_envs=num_envs, compile_seconds=compile_s,
                  warmup_seconds=warm, vector_steps_per_call=length, calls_per_repeat=k)


def make_gymnasium(impl: str, num_envs: int):
    import gymnasium

    if impl == "gymnasium_vector":
        return gymnasium.make_vec("CartPole-v1", num_envs=num_envs, vectorization_mode="vector_entry_point")
    return gymnasium.vector.SyncVectorEnv([lambda: gymnasium.make("CartPole-v1")] * num_envs)


def bench_gymnasium(impl: str, num_envs: int, repeats: int, target_seconds: float) -> dict:
    envs = make_gymnasium(impl, num_envs)
    rng = np.random.default_rng(0)

    def steps(k: int) -> None:
        for _ in range(k):
            envs.step(rng.integers(0, 2, num_envs))

    warm = seconds(lambda: envs.reset(seed=0))
    warm += seconds(lambda: steps(10))
    k = calls_for(seconds(lambda: steps(10)) / 10, target_seconds)
    times = [seconds(lambda: steps(k)) for _ in range(repeats)]
    envs.close()
    return record("env", impl, k * num_envs, times, num_envs=num_envs, warmup_seconds=warm, vector_steps_per_repeat=k)


def bench(impl: str, num_envs: int, repeats: int = 3, target_seconds: float = 0.3) -> dict:
    """One env-only record: env steps/s of `impl` at `num_envs` parallel envs."""
    if impl in JAX_IMPLS:
        return bench_jax(impl, num_envs, repeats, target_seconds)
    return bench_gymnasium(impl, num_envs, repeats, target_seconds)


def skip_reason(impl: str, num_envs: int) -> str | None:
    if impl == "gymnasium_sync" and num_envs > SYNC_MAX_ENVS:
        return f"SyncVectorEnv steps each env in a Python loop; sizes above {SYNC_MAX_ENVS} skipped"
    return None
