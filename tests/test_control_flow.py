"""The branch-free loop: no host-synchronising control flow per vector step, and the same bits as
the general loop wherever both run."""

import jax
import numpy as np
import pytest

from cartpole_jax.config import Config, resolve
from cartpole_jax.control_flow import find, sync_points
from cartpole_jax.core import schedule
from cartpole_jax.core.train import make_trainer
from cartpole_jax.program import Program, pick_devices

# The default and purejaxrl presets' shapes of schedule (gradient steps per vector step, steps per
# evaluation, whole periods per chunk), at sizes that compile and run in seconds.
DEFAULT_LIKE = Config(total_env_steps=3_200, buffer_size=800, learning_starts=200, eval_every=400, eval_episodes=3, num_chunks=4,
                      hidden_sizes=(8, 8))
PUREJAXRL_LIKE = resolve("purejaxrl")[1].replace(
    total_env_steps=4_000, buffer_size=1_000, learning_starts=500, batch_size=32, target_update_every=100, eval_every=1_000,
    eval_episodes=3, num_chunks=2, hidden_sizes=(8, 8), eps_decay_steps=2_000,
)


@pytest.fixture(scope="module")
def compiled():
    """(config name, loop) -> (compiled init, compiled chunk): each compiled once for the module."""
    out = {}
    for name, cfg in (("default", DEFAULT_LIKE), ("purejaxrl", PUREJAXRL_LIKE)):
        for loop in ("general", "branch_free"):
            trainer = make_trainer(cfg, loop=loop)
            state = jax.eval_shape(trainer.init, jax.random.key(0), cfg.hyperparams())
            chunk = jax.jit(trainer.run_chunk).lower(state, cfg.hyperparams(), 0).compile()
            out[name, loop] = (jax.jit(trainer.init), chunk)
    return out


CONFIGS = {"default": DEFAULT_LIKE, "purejaxrl": PUREJAXRL_LIKE}


def test_presets_take_the_branch_free_loop():
    for preset in ("default", "purejaxrl", "seed-tutorial"):
        assert schedule.branch_free(resolve(preset)[1]), preset
    assert schedule.branch_free(DEFAULT_LIKE) and schedule.branch_free(PUREJAXRL_LIKE)
    assert not schedule.branch_free(DEFAULT_LIKE.replace(num_chunks=3))  # a chunk would end mid-period
    assert not schedule.branch_free(DEFAULT_LIKE.replace(train_every=8))  # a gradient step every other vector step
    assert not schedule.branch_free(DEFAULT_LIKE.replace(eval_every=402))  # evaluations not a whole number of steps apart


@pytest.mark.parametrize("name", CONFIGS)
def test_no_host_synchronising_control_flow_per_step(name, compiled):
    cfg = CONFIGS[name]
    counts = sync_points(compiled[name, "branch_free"][1].as_text(), cfg.chunk_len)
    assert counts["per_step"] == 0, counts["steady"]
    # what is left is the evaluation's episode loop, once per evaluation
    assert [p["kind"] for p in counts["periodic"]] == ["while"]
    assert counts["periodic"][0]["per_step"] == pytest.approx(1 / schedule.steps_per_eval(cfg))


def test_the_counter_sees_the_general_loop_s_branches(compiled):
    text = compiled["purejaxrl", "general"][1].as_text()
    counts = sync_points(text, PUREJAXRL_LIKE.chunk_len)
    # whether the step exists, learns, updates the target, evaluates; and the evaluation's loop inside a branch
    assert counts["conditionals_per_step"] == 4 and counts["unknown_loops_per_step"] == 1, counts["steady"]
    assert len(find(text)) == 5


SMALL = DEFAULT_LIKE.replace(n_step=1, eval_episodes=1, hidden_sizes=(4,))  # tiny, so it compiles fast


def test_the_cli_s_program_has_none_either_with_the_accelerators_loop():
    """The real program (runs mapped over, sharded, CPU kernels) built with the loop accelerators take."""
    program = Program.get(SMALL, 2, pick_devices(1), loop="auto")
    program.compile(*program.prepare(SMALL, range(2), [{}] * 2))
    counts = sync_points(program.chunk_text(), program.steps_per_call)
    assert counts["per_step"] == 0 and len(counts["periodic"]) == 1, counts


def test_cpu_s_general_loop_gives_the_accelerators_loop_s_bits():
    """CPU takes the general loop (kernels.for_platform); the CLI's program gives the same bits with either."""
    out = {}
    for loop in (None, "branch_free"):
        program = Program.get(SMALL, 2, pick_devices(1), loop=loop)
        keys, hps = program.prepare(SMALL, [5, 6], [{}, {}])
        program.compile(keys, hps)
        state = program.init(keys, hps)
        for c in range(SMALL.num_chunks):
            state = program.chunk(state, hps, c)
        out[loop] = leaves(state)
    assert program.identity["loop"] == "branch_free" and Program.get(SMALL, 2, pick_devices(1)).identity["loop"] == "general"
    assert not np.isnan(out[None][-2]).any()
    for a, b in zip(out[None], out["branch_free"], strict=True):
        np.testing.assert_array_equal(a, b)


def leaves(state):
    raw = lambda x: jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x
    return [np.asarray(x) for x in jax.tree.leaves(jax.tree.map(raw, state))]


@pytest.mark.parametrize("name", CONFIGS)
def test_branch_free_and_general_loops_give_the_same_bits(name, compiled):
    """default: learning starts mid-chunk, 5-step returns, a Polyak target update every gradient step;
    purejaxrl: hard target updates every 10 vector steps, 1-step returns."""
    cfg, out = CONFIGS[name], {}
    for loop in ("general", "branch_free"):
        init, chunk = compiled[name, loop]
        state = init(jax.random.key(7), cfg.hyperparams())
        for c in range(cfg.num_chunks):
            state = chunk(state, cfg.hyperparams(), c)
        out[loop] = leaves(state)
    assert not np.isnan(out["general"][-2]).any()  # every evaluation was written
    for a, b in zip(out["general"], out["branch_free"], strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_config_the_branch_free_loop_cannot_run_is_refused():
    with pytest.raises(ValueError, match="not periodic"):
        make_trainer(DEFAULT_LIKE.replace(num_chunks=3), loop="branch_free")
