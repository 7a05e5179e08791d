"""Programs kept on disk as executables: loaded instead of compiled, the same bits, keyed by all they depend on."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cartpole_jax import executables
from cartpole_jax.config import Config
from cartpole_jax.program import Program, pick_devices, to_host

# its own static shapes, so no other test's program (or jax's cache entry for it) is reused here
CFG = Config(total_env_steps=600, num_envs=2, buffer_size=300, batch_size=16, learning_starts=100, hidden_sizes=(12,),
             eval_every=200, eval_episodes=2, num_chunks=3, checkpoint_every=0)


@pytest.fixture
def kept(tmp_path):
    executables.use(tmp_path / "programs")
    yield tmp_path / "programs"
    executables.use(None)


def trained(program: Program):
    keys, hps = program.prepare(CFG, [3, 4], [{}, {}])
    program.compile(keys, hps)
    state = program.init(keys, hps)
    for c in range(CFG.num_chunks):
        state = program.chunk(state, hps, c)
    return to_host((state.learner.params, state.metrics))


def test_a_kept_program_is_loaded_instead_of_compiled_with_the_same_bits(kept):
    devices = pick_devices(1)
    first = Program(CFG, 2, devices)
    compiled = trained(first)
    assert not first.loaded and sorted(p.name.split(".")[1] for p in kept.iterdir()) == ["chunk", "init"]
    again = Program(CFG, 2, devices)  # a new program object: nothing shared in memory
    assert jax.tree.all(jax.tree.map(np.array_equal, trained(again), compiled)) and again.loaded


def test_the_key_covers_what_the_program_depends_on(kept, monkeypatch):
    identity = Program(CFG, 2, pick_devices(1)).identity
    name = executables.key(identity)
    assert name == executables.key(dict(identity))
    assert executables.key({**identity, "static": Config(hidden_sizes=(13,)).program_key()}) != name
    assert executables.key({**identity, "runs": 4}) != name
    real = executables._fingerprint()
    monkeypatch.setattr(executables, "_fingerprint", lambda: {**real, "source": "edited"})
    assert executables.key(identity) != name  # an edit to this package's source
    assert {"flax", "optax", "gymnax"} <= set(real["libraries"]) and real["libraries"]["optax"]
    monkeypatch.setattr(executables, "_fingerprint", lambda: {**real, "libraries": {**real["libraries"], "optax": "0.0.1"}})
    assert executables.key(identity) != name  # another optax: its adam is traced into the program
    monkeypatch.setattr(executables, "_fingerprint", lambda: real)
    assert executables.key(identity) == name
    with jax.default_matmul_precision("highest"):  # a jax setting, changed in the middle of a process
        assert executables.key(identity) != name
    executables.use(None)
    assert executables.key(identity) is None  # nothing kept: nothing looked up


def test_a_damaged_entry_is_dropped_and_means_compiling(kept):
    name = executables.key(Program(CFG, 2, pick_devices(1)).identity)
    kept.mkdir()
    for suffix in executables.SUFFIXES:
        (kept / f"{name}.{suffix}").write_bytes(b"not an executable")
    assert executables.load(name, {"init": (None, None), "chunk": (None, None)}, pick_devices(1)) is None
    assert not (kept / f"{name}.init").exists()


def test_host_fields_leave_the_compiled_program_as_it_is():
    """config.HOST_FIELDS are left out of the executables' key: changing them must not change the program."""
    from dataclasses import replace

    from cartpole_jax.config import HOST_FIELDS

    def text(cfg):
        program = Program(cfg, 2, pick_devices(1))
        keys, hps = program.prepare(cfg, [0, 1], [{}, {}])
        state = jax.eval_shape(program._init, keys, hps)
        return program._chunk.lower(state, hps, jnp.int32(0)).as_text(), program.identity  # the program XLA is given

    base, identity = text(CFG)
    other, other_identity = text(replace(CFG, checkpoint_every=2, keep_checkpoints=5))
    assert set(HOST_FIELDS) == {"checkpoint_every", "keep_checkpoints"} and other == base and other_identity == identity
