"""Shared fixtures: tiny configs that compile and run in seconds."""

import pytest

from cartpole_jax.config import Config


@pytest.fixture
def tiny() -> Config:
    """A config small enough to compile and run in a few seconds on 2 CPU cores."""
    return Config(
        total_env_steps=1_200, num_envs=2, buffer_size=500, batch_size=32, learning_starts=200,
        hidden_sizes=(16, 16), eval_every=400, eval_episodes=4, num_chunks=3,
    )
