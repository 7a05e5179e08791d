"""Epsilon-greedy action selection: greedy at 0, uniform at 1, and the mix in between."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cartpole_jax.core import actor

N = 60_000
Q = jnp.tile(jnp.array([[0.0, 2.0, 1.0]]), (N, 1))  # greedy action 1 everywhere


@pytest.mark.parametrize("eps", [0.0, 0.3, 1.0])
def test_epsilon_greedy_takes_a_uniform_action_with_probability_eps(eps):
    actions = np.asarray(actor.epsilon_greedy(jax.random.key(0), Q, jnp.float32(eps)))
    freq = np.bincount(actions, minlength=3) / N
    expected = np.full(3, eps / 3) + np.array([0.0, 1.0 - eps, 0.0])
    np.testing.assert_allclose(freq, expected, atol=0.01)


def test_epsilon_greedy_is_a_function_of_its_key():
    a = actor.epsilon_greedy(jax.random.key(1), Q[:100], jnp.float32(0.5))
    b = actor.epsilon_greedy(jax.random.key(1), Q[:100], jnp.float32(0.5))
    c = actor.epsilon_greedy(jax.random.key(2), Q[:100], jnp.float32(0.5))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
