"""Circular replay buffer as pure functions over a state dataclass: init / add / sample / can_sample."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct


@struct.dataclass
class BufferState:
    data: object  # pytree of arrays with a leading capacity axis
    pos: jax.Array  # next slot to write
    size: jax.Array  # slots written so far, at most capacity


def capacity(state: BufferState) -> int:
    return jax.tree.leaves(state.data)[0].shape[0]


def init(example, capacity: int) -> BufferState:
    """An empty buffer holding `capacity` items shaped like `example` (one item, no batch axis)."""
    data = jax.tree.map(lambda x: jnp.zeros((capacity, *jnp.shape(x)), jnp.asarray(x).dtype), example)
    return BufferState(data, jnp.int32(0), jnp.int32(0))


def add(state: BufferState, items) -> BufferState:
    """Write a batch of items (leading axis n <= capacity), overwriting the oldest when full."""
    cap = capacity(state)
    n = jax.tree.leaves(items)[0].shape[0]
    idx = (state.pos + jnp.arange(n)) % cap
    data = jax.tree.map(lambda buf, x: buf.at[idx].set(x), state.data, items)
    return BufferState(data, (state.pos + n) % cap, jnp.minimum(state.size + n, cap))


def can_sample(state: BufferState, batch_size: int) -> jax.Array:
    return state.size >= batch_size


def sample(state: BufferState, key: jax.Array, batch_size: int):
    """Draw batch_size items uniformly, with replacement, from the written slots only."""
    idx = jax.random.randint(key, (batch_size,), 0, jnp.maximum(state.size, 1))
    return jax.tree.map(lambda buf: buf[idx], state.data)


def sample_sequences(state: BufferState, key: jax.Array, batch_size: int, length: int, stride: int):
    """Draw batch_size runs of `length` items, each `stride` slots after the last; leaves (batch, length, ...).

    With stride = the number of items added per call (num_envs), a run follows one env through
    consecutive steps. Starts are uniform over the written slots whose whole run is written too.
    """
    cap = capacity(state)
    starts = jax.random.randint(key, (batch_size,), 0, jnp.maximum(state.size - (length - 1) * stride, 1))
    oldest = state.pos - state.size  # slots in age order: oldest + 0, oldest + 1, ... (mod capacity)
    idx = (oldest + starts[:, None] + stride * jnp.arange(length)) % cap
    return jax.tree.map(lambda buf: buf[idx], state.data)
