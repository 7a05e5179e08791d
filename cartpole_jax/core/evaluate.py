"""Greedy evaluation inside jit: full CartPole-v1 episodes, stopping once all have ended."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from . import env


def evaluate(key, params, apply_fn, num_episodes: int) -> jax.Array:
    """Returns of `num_episodes` greedy episodes (each up to 500 steps), shape (num_episodes,)."""
    obs, state = env.reset(key, num_episodes)
    max_steps = env.PARAMS.max_steps_in_episode

    def running(carry):
        _, _, done, _, t = carry
        return (t < max_steps) & ~jnp.all(done)

    def body(carry):
        state, obs, done, returns, t = carry
        action = jnp.argmax(apply_fn(params, obs), axis=-1)
        state, terminated, truncated = env.advance(state, action)
        returns = returns + (~done).astype(jnp.float32)
        return state, env.observe(state), done | terminated | truncated, returns, t + 1

    init = (state, obs, jnp.zeros(num_episodes, bool), jnp.zeros(num_episodes, jnp.float32), 0)
    return jax.lax.while_loop(running, body, init)[3]
