"""Epsilon schedules and epsilon-greedy action selection."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def epsilon(cfg, hp, env_step):
    """Exploration rate before env step `env_step` (counted per seed)."""
    if cfg.epsilon_schedule == "exponential":
        decays = jnp.maximum(env_step - cfg.learning_starts, 0).astype(jnp.float32)
        return jnp.maximum(hp.eps_end, hp.eps_start * hp.eps_decay**decays)
    frac = jnp.clip(env_step / hp.eps_decay_steps, 0.0, 1.0)
    return hp.eps_start + frac * (hp.eps_end - hp.eps_start)


def epsilon_greedy(key, q_values, eps):
    """Greedy actions from q_values (n, A), each replaced by a uniform one with probability eps."""
    k_explore, k_action = jax.random.split(key)
    n, num_actions = q_values.shape
    explore = jax.random.uniform(k_explore, (n,)) < eps
    random_action = jax.random.randint(k_action, (n,), 0, num_actions)
    return jnp.where(explore, random_action, jnp.argmax(q_values, axis=-1))
