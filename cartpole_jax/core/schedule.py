"""What happens at vector step t: gradient steps, target updates, evaluations.

Each is a function of the step index and static config only, so under vmap the predicates stay
unbatched and `lax.cond` skips work for real. Intervals use boundary crossings of env-step counts
(`a // k != b // k`), so any num_envs works. Works on Python ints, numpy and jax arrays alike.
"""

from __future__ import annotations

import numpy as np


def _crossings(cfg, t, every: int):
    n = cfg.num_envs
    return ((t + 1) * n) // every - (t * n) // every


def learning_started(cfg, t):
    return (t + 1) * cfg.num_envs >= max(cfg.learning_starts, cfg.batch_size)


def updates_at(cfg, t):
    """Gradient steps taken after vector step t."""
    return _crossings(cfg, t, cfg.train_every) * learning_started(cfg, t)


def max_updates_per_step(cfg) -> int:
    return -(-cfg.num_envs // cfg.train_every)


def total_updates(cfg) -> int:
    """Sum of updates_at over the run: the crossings telescope from the first learning step on."""
    n, k, num_steps = cfg.num_envs, cfg.train_every, cfg.num_vector_steps
    first = max(0, -(-max(cfg.learning_starts, cfg.batch_size) // n) - 1)
    return (num_steps * n) // k - (first * n) // k if first < num_steps else 0


def target_update_due(cfg, t):
    """Whether a (hard or Polyak) target update follows vector step t when target_update_every > 0."""
    return (_crossings(cfg, t, cfg.target_update_every) > 0) & learning_started(cfg, t)


def steps_per_eval(cfg) -> int:
    """Vector steps between evaluations, where eval_every is a multiple of num_envs (else 0)."""
    return 0 if cfg.eval_every % cfg.num_envs else cfg.eval_every // cfg.num_envs


def branch_free(cfg) -> bool:
    """Whether the loop can run without a branch per step: every learning step takes the same number
    of gradient steps, evaluations fall every steps_per_eval steps, and chunks hold whole periods."""
    per = steps_per_eval(cfg)
    return (
        cfg.num_envs % cfg.train_every == 0
        and per > 0
        and cfg.chunk_len % per == 0
        and cfg.num_vector_steps % cfg.chunk_len == 0
    )


def eval_slot(cfg, t):
    """(whether an evaluation follows vector step t, its row in the metrics table)."""
    crossed = _crossings(cfg, t, cfg.eval_every) > 0
    last = t == cfg.num_vector_steps - 1
    slot = ((t + 1) * cfg.num_envs) // cfg.eval_every - 1
    where = np.where if isinstance(t, (int, np.integer, np.ndarray)) else _jnp_where
    return crossed | last, where(crossed, slot, cfg.num_evals - 1)


def _jnp_where(c, a, b):
    import jax.numpy as jnp

    return jnp.where(c, a, b)
