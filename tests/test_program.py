"""Lifting one run's functions to many (`over_runs`) and what a Program's compile leaves behind."""

import gc

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cartpole_jax import checkpoint
from cartpole_jax.core import kernels
from cartpole_jax.core.train import make_trainer
from cartpole_jax.program import Program, batch_hyperparams, collector_paused, over_runs


def test_in_place_map_gives_lax_map_s_bits_and_needs_no_second_state(tiny):
    """Runs written back into the donated state: every leaf as lax.map's fresh arrays, and no
    temporary as large as the state (lax.map zero-fills one for its outputs)."""
    cpu = kernels.for_platform("cpu", tiny.hidden_sizes)  # the options Program compiles this config with
    trainer = make_trainer(tiny, cpu)
    keys, hps = jax.vmap(jax.random.key)(jnp.arange(3)), batch_hyperparams(tiny, [{}] * 3)
    state = jax.jit(over_runs(trainer.init, "map"))(keys, hps)
    chunks = {in_place: jax.jit(over_runs(trainer.run_chunk, "map", in_place), donate_argnums=0, **cpu.jit_options())
              for in_place in (False, True)}
    out = {}
    for in_place, chunk in chunks.items():
        s = jax.tree.map(jnp.copy, state)
        for c in range(tiny.num_chunks):
            s = chunk(s, hps, jnp.int32(c))
        out[in_place] = checkpoint.to_host(s, 3)[1]
    for a, b in zip(out[False], out[True], strict=True):
        np.testing.assert_array_equal(a, b)
    state_bytes = sum(x.nbytes for x in jax.tree.leaves(state) if not jnp.issubdtype(x.dtype, jax.dtypes.prng_key))
    memory = chunks[True].lower(state, hps, jnp.int32(0)).compile().memory_analysis()
    if memory is None:
        pytest.skip("backend gives no memory analysis")
    assert memory.temp_size_in_bytes < state_bytes


@pytest.mark.parametrize("enabled", [True, False])
def test_collector_paused_restores_the_collector_as_it_was(enabled):
    was = gc.isenabled()
    try:
        (gc.enable if enabled else gc.disable)()
        with collector_paused():
            assert not gc.isenabled()
        assert gc.isenabled() == enabled
        with pytest.raises(RuntimeError), collector_paused():
            raise RuntimeError
        assert gc.isenabled() == enabled
    finally:
        (gc.enable if was else gc.disable)()


def test_compile_runs_without_the_collector_and_turns_it_back_on(tiny, monkeypatch):
    seen = []
    real = jax.eval_shape
    monkeypatch.setattr(jax, "eval_shape", lambda *a, **k: (seen.append(gc.isenabled()), real(*a, **k))[1])
    program = Program(tiny, 2, jax.devices()[:1])
    program.compile(*program.prepare(tiny, [0, 1], [{}] * 2))
    assert seen and not any(seen) and gc.isenabled()  # flax calls it too, while tracing
