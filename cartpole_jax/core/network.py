"""The Q-network: a Flax MLP with an optional dueling head."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

ACTIVATIONS = {"relu": nn.relu, "tanh": nn.tanh, "elu": nn.elu, "gelu": nn.gelu, "silu": nn.silu}
INITIALIZERS = {
    "lecun_normal": nn.initializers.lecun_normal,
    "he_uniform": nn.initializers.he_uniform,
    "he_normal": nn.initializers.he_normal,
    "glorot_uniform": nn.initializers.glorot_uniform,
    "orthogonal": nn.initializers.orthogonal,
}
# A layer is thin if it has at most THIN inputs or outputs (CartPole has 4 observations, 2 actions)
# and at most THIN_WEIGHTS weights: past that a matmul's fixed cost is small against its arithmetic.
THIN, THIN_WEIGHTS = 4, 256


def sum_dot(lhs, rhs, dimension_numbers=None, precision=None, preferred_element_type=None):
    """x @ w as a broadcast product summed over the inputs: a Dense `dot_general` for thin layers.

    Matches what nn.Dense asks of it (contract x's last axis with w's first). On CPU a matmul
    library call costs microseconds however small it is, while XLA fuses this into its neighbours;
    `kernels.py` says when that pays.
    """
    return jnp.sum(lhs[..., :, None] * rhs, axis=-2)


class QNetwork(nn.Module):
    """Maps observations (..., 4) to Q-values (..., num_actions).

    `thin_as_sums` computes the thin layers with `sum_dot` instead of a matmul: the same function
    and parameters, other rounding.
    """

    hidden_sizes: Sequence[int]
    num_actions: int = 2
    activation: str = "relu"
    kernel_init: str = "lecun_normal"
    dueling: bool = False
    thin_as_sums: bool = False

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        init = INITIALIZERS[self.kernel_init]()

        def dense(x, size, name):
            thin = self.thin_as_sums and min(x.shape[-1], size) <= THIN and x.shape[-1] * size <= THIN_WEIGHTS
            return nn.Dense(size, kernel_init=init, name=name, dot_general=sum_dot if thin else jax.lax.dot_general)(x)

        x = obs
        for i, size in enumerate(self.hidden_sizes):
            x = ACTIVATIONS[self.activation](dense(x, size, f"hidden_{i}"))
        if not self.dueling:
            return dense(x, self.num_actions, "q")
        value = dense(x, 1, "value")
        advantage = dense(x, self.num_actions, "advantage")
        return value + advantage - jnp.mean(advantage, axis=-1, keepdims=True)


def make_network(cfg, thin_as_sums: bool = False) -> QNetwork:
    return QNetwork(tuple(cfg.hidden_sizes), 2, cfg.activation, cfg.kernel_init, cfg.dueling, thin_as_sums)
