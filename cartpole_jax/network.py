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


class QNetwork(nn.Module):
    """Maps observations (..., 4) to Q-values (..., num_actions)."""

    hidden_sizes: Sequence[int]
    num_actions: int = 2
    activation: str = "relu"
    kernel_init: str = "lecun_normal"
    dueling: bool = False

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        init = INITIALIZERS[self.kernel_init]()
        x = obs
        for i, size in enumerate(self.hidden_sizes):
            x = ACTIVATIONS[self.activation](nn.Dense(size, kernel_init=init, name=f"hidden_{i}")(x))
        if not self.dueling:
            return nn.Dense(self.num_actions, kernel_init=init, name="q")(x)
        value = nn.Dense(1, kernel_init=init, name="value")(x)
        advantage = nn.Dense(self.num_actions, kernel_init=init, name="advantage")(x)
        return value + advantage - jnp.mean(advantage, axis=-1, keepdims=True)


def make_network(cfg) -> QNetwork:
    return QNetwork(tuple(cfg.hidden_sizes), 2, cfg.activation, cfg.kernel_init, cfg.dueling)
