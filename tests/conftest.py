"""Shared fixtures: tiny configs that compile and run in seconds."""

import atexit
import os
import shutil
import tempfile

import pytest

from cartpole_jax.config import Config

# The CLI keeps compiled programs on disk; tests (and the CLI processes they start) use a fresh folder
# of their own, so nothing a user compiled is read or written here.
os.environ["CARTPOLE_JAX_CACHE"] = tempfile.mkdtemp(prefix="cartpole-jax-test-cache-")
atexit.register(shutil.rmtree, os.environ["CARTPOLE_JAX_CACHE"], ignore_errors=True)


@pytest.fixture
def tiny() -> Config:
    """A config small enough to compile and run in a few seconds on 2 CPU cores."""
    return Config(
        total_env_steps=1_200, num_envs=2, buffer_size=500, batch_size=32, learning_starts=200,
        hidden_sizes=(16, 16), eval_every=400, eval_episodes=4, num_chunks=3,
    )
