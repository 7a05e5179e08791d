"""The data that flows through a run: transitions, learner state, the whole run state."""

from __future__ import annotations

from typing import Any

import jax
from flax import struct

from .metrics import METRIC, METRIC_COLUMNS  # noqa: F401  (re-exported: the metrics table's columns)


@struct.dataclass
class Transition:
    """One env step per leading index; `done` marks a target that must not bootstrap."""

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    next_obs: jax.Array
    done: jax.Array
    ended: jax.Array  # the episode ended here (terminated or truncated): n-step returns stop at it


@struct.dataclass
class LearnerState:
    """Online and target Q-network parameters and the optimizer state."""

    params: Any
    target_params: Any
    opt_state: Any


@struct.dataclass
class EpisodeStats:
    """Training-episode and loss accumulators since the last evaluation."""

    running_return: jax.Array  # (num_envs,) return of each env's current episode
    return_sum: jax.Array  # sum of returns of the episodes finished since the last eval
    episodes: jax.Array  # how many finished
    loss_sum: jax.Array
    updates: jax.Array


@struct.dataclass
class RunState:
    """Everything one seed's run carries from step to step; checkpointing saves exactly this."""

    key: jax.Array
    env_state: Any
    obs: jax.Array
    buffer: Any
    learner: LearnerState
    stats: EpisodeStats
    metrics: jax.Array  # (num_evals, len(METRIC_COLUMNS)), NaN until written
    nonfinite_step: jax.Array  # first env step whose loss or params were not finite; -1 if none
