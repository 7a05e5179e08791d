"""The Q-network: thin layers as sums are the same function with the same parameters as matmuls."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cartpole_jax.config import Config
from cartpole_jax.core.network import make_network, sum_dot


def test_sum_dot_is_a_matmul_over_the_last_axis():
    x = jnp.arange(12.0).reshape(2, 3, 2)
    w = jnp.array([[1.0, -2.0, 0.5], [3.0, 0.0, -1.0]])
    np.testing.assert_array_equal(sum_dot(x, w), x @ w)  # small integers and halves: exact either way


@pytest.mark.parametrize("hidden, dueling", [((32, 32), False), ((32, 32), True), ((512, 256, 64), False), ((), False)])
def test_thin_layers_as_sums_keep_parameters_and_outputs(hidden, dueling):
    cfg = Config(hidden_sizes=hidden, dueling=dueling)
    dots, sums = make_network(cfg), make_network(cfg, thin_as_sums=True)
    params = dots.init(jax.random.key(0), jnp.zeros(4))
    same = jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), params, sums.init(jax.random.key(0), jnp.zeros(4)))
    assert all(jax.tree.leaves(same))  # checkpoints and policy files do not care which was trained
    obs = jax.random.normal(jax.random.key(1), (64, 4))
    np.testing.assert_allclose(sums.apply(params, obs), dots.apply(params, obs), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(sums.apply(params, obs[0]), dots.apply(params, obs[0]), rtol=1e-5, atol=1e-5)


# 4->32 and 32->2 are thin; 4->512 and 4->120 have too many weights; 64->2 and 84->2 are thin
@pytest.mark.parametrize("hidden, matmuls", [((32, 32), 1), ((512, 256, 64), 3), ((120, 84), 2), ((64,), 0), ((), 0)])
def test_only_small_layers_with_at_most_four_inputs_or_outputs_become_sums(hidden, matmuls):
    cfg = Config(hidden_sizes=hidden)
    net = make_network(cfg, thin_as_sums=True)
    params = net.init(jax.random.key(0), jnp.zeros(4))
    jaxpr = str(jax.make_jaxpr(net.apply)(params, jnp.zeros((8, 4))))
    assert jaxpr.count("dot_general") == matmuls
    plain = str(jax.make_jaxpr(make_network(cfg).apply)(params, jnp.zeros((8, 4))))
    assert plain.count("dot_general") == len(hidden) + 1
