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
    n, num_actions = q_values.shape
    # One draw for both choices (randint alone would take three): on CPU each draw is a loop of small kernels.
    u = jax.random.uniform(key, (2, n))
    random_action = jnp.minimum((u[1] * num_actions).astype(jnp.int32), num_actions - 1)
    return jnp.where(u[0] < eps, random_action, jnp.argmax(q_values, axis=-1))
