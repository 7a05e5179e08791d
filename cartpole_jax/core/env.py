"""Batched CartPole-v1 on gymnax's dynamics, with termination and truncation kept apart.

gymnax's own auto-reset step splits a key per env and computes a reset for every env on every
step; here one uniform draw serves the whole batch and finished envs take it by `where`.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct


def _gymnax_cartpole() -> types.ModuleType:
    """gymnax's CartPole module, without running `gymnax/__init__`.

    That __init__ imports every gymnax environment (MinAtar, bsuite, seaborn for Pong's plots): ~3 s
    of every CLI start for one 100-line module. The package and its parents are stood in for by bare
    modules with the right search path, and every gymnax.* entry is dropped from sys.modules after,
    so a later `import gymnax` anywhere still loads the real package, complete.
    """
    spec = None if "gymnax" in sys.modules else importlib.util.find_spec("gymnax")
    if spec is None or not spec.submodule_search_locations:  # imported in full already, or missing (its ImportError)
        return importlib.import_module("gymnax.environments.classic_control.cartpole")
    root = spec.submodule_search_locations[0]
    for name, folder in (("gymnax", ""), ("gymnax.environments", "/environments"),
                         ("gymnax.environments.classic_control", "/environments/classic_control")):
        stand_in = types.ModuleType(name)
        stand_in.__path__ = [root + folder]
        sys.modules[name] = stand_in
    try:
        return importlib.import_module("gymnax.environments.classic_control.cartpole")
    finally:
        for name in [n for n in sys.modules if n == "gymnax" or n.startswith("gymnax.")]:
            del sys.modules[name]


_gymnax = _gymnax_cartpole()
CartPole, EnvParams, EnvState = _gymnax.CartPole, _gymnax.EnvParams, _gymnax.EnvState

NUM_ACTIONS = 2
OBS_SIZE = 4
PARAMS = EnvParams()
_CARTPOLE = CartPole()


@struct.dataclass
class StepResult:
    obs: jax.Array  # observation to act on next (a fresh episode's where one ended)
    final_obs: jax.Array  # true observation after the step, before any reset
    reward: jax.Array
    terminated: jax.Array  # the pole fell or the cart left the track
    truncated: jax.Array  # the 500-step time limit cut the episode


def observe(state: EnvState) -> jax.Array:
    return jnp.stack([state.x, state.x_dot, state.theta, state.theta_dot], axis=-1)


# Distinct odd salts, one per state coordinate, for spreading one random word into four.
_SALTS = np.array([0x9E3779B9, 0x7F4A7C15, 0xF39CC061, 0x5CEDC835], np.uint32)[:, None]


def _fmix32(h: jax.Array) -> jax.Array:
    """murmur3's 32-bit finaliser: a bijection that scatters every input bit over the output."""
    h = h ^ (h >> 16)
    h = h * jnp.uint32(0x85EBCA6B)
    h = h ^ (h >> 13)
    h = h * jnp.uint32(0xC2B2AE35)
    return h ^ (h >> 16)


def _uniform_states(key: jax.Array, num_envs: int) -> jax.Array:
    """(4, num_envs) floats uniform in [-0.05, 0.05), 24 bits each.

    One threefry word per env, spread to four coordinates by a hash: four threefry draws per env
    took twice as long as the physics, and the batch needs a fresh draw on every step.
    """
    words = jax.random.bits(key, (num_envs,), jnp.uint32)
    h = _fmix32(words[None, :] ^ jnp.asarray(_SALTS))
    # Centre in integers, then one multiply: a single rounding, so jit and eager agree to the bit.
    centred = (h >> 8).astype(jnp.int32) - (1 << 23)
    return centred.astype(jnp.float32) * jnp.float32(0.1 / (1 << 24))


def _initial(key: jax.Array, num_envs: int) -> EnvState:
    s = _uniform_states(key, num_envs)
    return EnvState(x=s[0], x_dot=s[1], theta=s[2], theta_dot=s[3], time=jnp.zeros(num_envs, jnp.int32))


def reset(key: jax.Array, num_envs: int) -> tuple[jax.Array, EnvState]:
    """Fresh episodes for `num_envs` envs: states uniform in [-0.05, 0.05]^4, as gymnasium does."""
    state = _initial(key, num_envs)
    return observe(state), state


def is_terminated(state: EnvState, params: EnvParams = PARAMS) -> jax.Array:
    return _CARTPOLE.is_terminated(state, params)


def advance(state: EnvState, action: jax.Array, params: EnvParams = PARAMS) -> tuple[EnvState, jax.Array, jax.Array]:
    """CartPole-v1 physics for every env, no reset: (state, terminated, truncated)."""
    unused_key = jax.random.key(0)  # gymnax's CartPole step draws nothing
    stepped = jax.vmap(_CARTPOLE.step_env, in_axes=(None, 0, 0, None))(unused_key, state, action, params)[1]
    terminated = is_terminated(stepped, params)
    truncated = (stepped.time >= params.max_steps_in_episode) & ~terminated
    return stepped, terminated, truncated


def step(key: jax.Array, state: EnvState, action: jax.Array, params: EnvParams = PARAMS) -> tuple[EnvState, StepResult]:
    """Advance every env one step; envs whose episode ended start a new one from `key`'s draw."""
    stepped, terminated, truncated = advance(state, action, params)
    done = terminated | truncated
    fresh = _initial(key, action.shape[0])
    next_state = jax.tree.map(lambda a, b: jnp.where(done, a, b), fresh, stepped)
    result = StepResult(
        obs=observe(next_state),
        final_obs=observe(stepped),
        reward=jnp.ones_like(stepped.x),
        terminated=terminated,
        truncated=truncated,
    )
    return next_state, result
