"""End to end: a short default-preset run really learns (random play scores about 22)."""

import numpy as np
import pytest

from cartpole_jax.config import resolve
from cartpole_jax.driver import train_seeds


@pytest.mark.slow
def test_short_default_run_learns_well_above_random():
    _, cfg = resolve("default", None, ["total_env_steps=10000", "eval_every=1000", "eps_decay_steps=6000"])
    result = train_seeds(cfg, seeds=[0, 1])
    evals = result.metrics[:, :, 1]
    assert evals.shape == (2, 10)
    assert np.all(evals[:, 0] < 100), evals  # the first eval comes before any gradient step (learning_starts)
    assert np.all(evals.max(axis=1) > 150), evals  # random play averages about 22
