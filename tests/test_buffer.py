"""The replay buffer behaves like a Python deque(maxlen=capacity), checked by a hypothesis state machine.

Every item encodes its global index g in all of its fields, so a swapped, stale, torn or
zero-initialised slot shows up: obs = 4g + (0, 1, 2, 3), next_obs = obs + 0.5, action = g % 2,
reward = g, done = (g % 3 == 0), ended = (g % 5 == 0).
"""

from collections import deque

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from cartpole_jax.core import buffer
from cartpole_jax.core.types import Transition

_add = jax.jit(buffer.add)
_sample = jax.jit(buffer.sample, static_argnums=2)
_init = jax.jit(buffer.init, static_argnums=1)
EXAMPLE = Transition(np.zeros(4, np.float32), np.int32(0), np.float32(0), np.zeros(4, np.float32), np.bool_(False), np.bool_(False))
SAMPLE = 16  # one batch shape per capacity keeps compilations few; can_sample covers other batch sizes


def items(start: int, n: int) -> Transition:
    g = np.arange(start, start + n)
    obs = (4 * g[:, None] + np.arange(4)).astype(np.float32)
    return Transition(obs, (g % 2).astype(np.int32), g.astype(np.float32), obs + np.float32(0.5), g % 3 == 0, g % 5 == 0)


def decode(t: Transition) -> np.ndarray:
    """The global indices of a batch of items, after checking each item is whole."""
    t = jax.device_get(t)
    g = t.reward.astype(np.int64)
    if len(g) == 0:
        return g
    expected = items(0, int(g.max()) + 1)
    np.testing.assert_array_equal(t.obs, expected.obs[g])
    np.testing.assert_array_equal(t.next_obs, t.obs + np.float32(0.5))  # obs and next_obs stay aligned
    np.testing.assert_array_equal(t.action, g % 2)
    np.testing.assert_array_equal(t.done, g % 3 == 0)
    np.testing.assert_array_equal(t.ended, g % 5 == 0)
    return g


class BufferMachine(RuleBasedStateMachine):
    # few distinct shapes, so that jit compiles little: capacities with and without divisors, num_envs
    # that divide them or not (3 into 5, 7, 8), batches smaller and larger than what is held
    @initialize(capacity=st.sampled_from([1, 5, 8]), data=st.data())
    def setup(self, capacity, data):
        self.capacity = capacity
        self.num_envs = data.draw(st.sampled_from(sorted({1, min(3, capacity), capacity})), label="num_envs")
        self.state = _init(EXAMPLE, capacity)
        self.model: deque[int] = deque(maxlen=capacity)
        self.written = 0

    def _add(self, n: int) -> None:
        self.state = _add(self.state, items(self.written, n))
        self.model.extend(range(self.written, self.written + n))
        self.written += n

    @rule()
    def add_vector_step(self):
        self._add(self.num_envs)

    @rule(data=st.data())
    def add_any_batch(self, data):
        self._add(data.draw(st.sampled_from(sorted({1, min(2, self.capacity), self.capacity})), label="n"))

    @rule(batch_size=st.integers(1, 16))
    def can_sample_iff_enough(self, batch_size):
        assert bool(buffer.can_sample(self.state, batch_size)) == (len(self.model) >= batch_size)

    @precondition(lambda self: len(self.model) > 0)
    @rule(seed=st.integers(0, 2**31 - 1))
    def sample_only_written_items(self, seed):
        batch = _sample(self.state, jax.random.key(seed), SAMPLE)
        assert batch.obs.shape == (SAMPLE, 4)
        g = decode(batch)
        assert set(g.tolist()) <= set(self.model), (g, list(self.model))

    @invariant()
    def matches_the_deque(self):
        if not hasattr(self, "state"):
            return
        size, pos = int(self.state.size), int(self.state.pos)
        assert size == len(self.model)
        assert pos == self.written % self.capacity
        assert buffer.capacity(self.state) == self.capacity
        # the written slots, oldest first, are exactly the deque, in order (wrap-around included)
        order = [(pos - size + k) % self.capacity for k in range(size)]
        held = jax.tree.map(lambda x: np.asarray(x)[order], self.state.data)
        assert decode(held).tolist() == list(self.model)
        # slots never written are still zeros (so sampling them would be caught by decode)
        unwritten = jax.tree.map(lambda x: np.asarray(x)[size:], self.state.data)
        assert all(not np.any(leaf) for leaf in jax.tree.leaves(unwritten))


BufferMachine.TestCase.settings = settings(
    max_examples=40, stateful_step_count=12, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestBuffer = BufferMachine.TestCase


def test_sampling_is_uniform_over_the_written_slots():
    """All written items are drawn about equally often, and nothing else is."""
    state = _init(EXAMPLE, 10)
    for start in range(0, 13, 3):  # 15 items through 10 slots: items 5..14 remain
        state = _add(state, items(start, 3))
    g = decode(_sample(state, jax.random.key(0), 20_000))
    counts = np.bincount(g, minlength=15)
    assert counts[:5].sum() == 0
    np.testing.assert_allclose(counts[5:] / 20_000, 0.1, atol=0.01)


def test_add_under_jit_keeps_dtypes_and_shapes():
    state = _add(_init(EXAMPLE, 7), items(0, 5))
    for leaf, ex in zip(jax.tree.leaves(state.data), jax.tree.leaves(EXAMPLE), strict=True):
        assert leaf.shape == (7, *jnp.shape(ex)) and leaf.dtype == jnp.asarray(ex).dtype


_sample_sequences = jax.jit(buffer.sample_sequences, static_argnums=(2, 3, 4))


@pytest.mark.parametrize(
    ("capacity", "num_envs", "vector_steps", "length"),
    [(7, 3, 2, 2), (7, 3, 10, 2), (8, 2, 9, 4), (10, 1, 3, 3), (10, 4, 40, 2), (9, 3, 7, 3), (5, 5, 6, 1)],
)
def test_sequences_follow_one_env_through_stored_steps(capacity, num_envs, vector_steps, length):
    """Runs of `length` steps of one env, each step num_envs slots after the last, from every
    start whose whole run is still held (wrap-around and capacities num_envs does not divide included)."""
    state = _init(EXAMPLE, capacity)
    model: deque[int] = deque(maxlen=capacity)
    for t in range(vector_steps):
        state = _add(state, items(t * num_envs, num_envs))
        model.extend(range(t * num_envs, (t + 1) * num_envs))
    seq = _sample_sequences(state, jax.random.key(1), 4_000, length, num_envs)
    g = decode(jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), seq)).reshape(4_000, length)
    np.testing.assert_array_equal(np.diff(g, axis=1), num_envs)  # same env, consecutive vector steps
    valid = {s for s in model if s + (length - 1) * num_envs in model}
    assert set(g[:, 0].tolist()) == valid  # all of them drawn, nothing else


def test_one_draw_of_starts_serves_several_batches():
    """Row i of a (steps, batch) draw gathers exactly what gathering those starts alone gives."""
    state = _add(_add(_init(EXAMPLE, 12), items(0, 4)), items(4, 4))
    starts = buffer.sample_starts(state, jax.random.key(3), (3, 5), 2, 4)
    assert starts.shape == (3, 5) and int(starts.max()) < 8 - 4
    both = buffer.gather_sequences(state, starts, 2, 4)
    for i in range(3):
        row = buffer.gather_sequences(state, starts[i], 2, 4)
        for a, b in zip(jax.tree.leaves(both), jax.tree.leaves(row), strict=True):
            np.testing.assert_array_equal(a[i], b)
