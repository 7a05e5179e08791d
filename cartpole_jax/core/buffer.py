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


def sample_starts(state: BufferState, key: jax.Array, shape: tuple[int, ...], length: int = 1, stride: int = 1):
    """Uniform random starts, any shape, of runs of `length` items `stride` slots apart that are wholly written.

    Starts count from the oldest item, as gather_sequences reads them; with length 1 the written slots
    are exactly [0, size), so they are also slots for `gather`. Drawing the batches of several gradient
    steps at once costs one draw instead of several: on CPU each draw is a loop of small kernels.
    """
    return jax.random.randint(key, shape, 0, jnp.maximum(state.size - (length - 1) * stride, 1))


def gather(state: BufferState, idx: jax.Array):
    """The items at slots `idx` (any shape); leaves (*idx.shape, ...)."""
    return jax.tree.map(lambda buf: buf[idx], state.data)


def gather_sequences(state: BufferState, starts: jax.Array, length: int, stride: int):
    """The runs of `length` items `stride` slots apart from each start, counted from the oldest item.

    With stride = the number of items added per call (num_envs), a run follows one env through
    consecutive steps. Leaves (*starts.shape, length, ...).
    """
    return gather(state, sequence_slots(state, starts, length, stride))


def sequence_slots(state: BufferState, starts: jax.Array, length: int, stride: int):
    """The slots gather_sequences reads: (*starts.shape, length)."""
    oldest = state.pos - state.size  # slots in age order: oldest + 0, oldest + 1, ... (mod capacity)
    return (oldest + starts[..., None] + stride * jnp.arange(length)) % capacity(state)


def sample(state: BufferState, key: jax.Array, batch_size: int):
    """Draw batch_size items uniformly, with replacement, from the written slots only."""
    return gather(state, sample_starts(state, key, (batch_size,)))


def sample_sequences(state: BufferState, key: jax.Array, batch_size: int, length: int, stride: int):
    """Draw batch_size runs (see gather_sequences), starts uniform over those wholly written; leaves (batch, length, ...)."""
    return gather_sequences(state, sample_starts(state, key, (batch_size,), length, stride), length, stride)
