"""Runs are functions of (config, seed): bitwise the same twice, across processes, and whatever other seeds share the call."""

import json
import subprocess
import sys

import jax
import numpy as np

from cartpole_jax.config import Config
from cartpole_jax.core import actor
from cartpole_jax.core.train import make_train
from cartpole_jax.driver import train_seeds
from cartpole_jax.outputs import metrics_csv
from cartpole_jax.results import params_sha256

CFG = Config(
    total_env_steps=1_200, num_envs=2, buffer_size=500, batch_size=32, learning_starts=200, hidden_sizes=(16, 16),
    eval_every=400, eval_episodes=4, num_chunks=3, checkpoint_every=0,
)
CLI_SETS = [f"{k}={json.dumps(v)}" for k, v in CFG.to_dict().items() if v != getattr(Config(), k) and k != "hidden_sizes"]
CLI_SETS.append(f"hidden_sizes={list(CFG.hidden_sizes)}")
SET_ARGS = [arg for s in CLI_SETS for arg in ("--set", s)]  # CFG as train's flags


def same_run(a, i, b, j) -> None:
    """Run i of result a and run j of result b are bitwise identical: every parameter and every metric."""
    jax.tree.map(lambda x, y: np.testing.assert_array_equal(x, y, strict=True), a.params[i], b.params[j])
    assert params_sha256(a.params[i]) == params_sha256(b.params[j])
    np.testing.assert_array_equal(a.metrics[i], b.metrics[j])  # NaNs (unwritten rows) compare equal here


def cli_train(out, seed: int) -> subprocess.Popen:
    argv = [sys.executable, "-m", "cartpole_jax", "train", "--quiet", "--seed", str(seed), "--out", str(out), *SET_ARGS]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


# One test (not four sharing a fixture), so that under pytest-xdist each program is compiled by one worker only.
def test_a_run_is_a_function_of_config_and_seed(tmp_path):
    # two fresh `cartpole-jax train` processes run meanwhile, for the cross-process check at the end
    procs = [cli_train(tmp_path / f"run{i}", seed=2) for i in range(2)]

    alone = train_seeds(CFG, [2])
    assert not np.isnan(alone.metrics[0][:, 1]).any()  # every evaluation row was written

    # same config and seed twice in one process
    same_run(alone, 0, train_seeds(CFG, [2]), 0)

    # a seed among others equals the seed alone (runs are mapped, not batched, on CPU)
    four = train_seeds(CFG, [0, 1, 2, 3])
    same_run(four, 2, alone, 0)

    # different seeds really differ
    assert len({params_sha256(p) for p in four.params}) == 4
    for i in range(4):
        for j in range(i + 1, 4):
            assert not np.array_equal(four.metrics[i], four.metrics[j])

    # across processes: both CLI runs agree bit for bit with each other and with this process
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-3000:]
    summaries = [json.loads((tmp_path / f"run{i}" / "summary.json").read_text()) for i in range(2)]
    csvs = [(tmp_path / f"run{i}" / "metrics.csv").read_bytes().decode() for i in range(2)]
    config = json.loads((tmp_path / "run0" / "config.json").read_text())
    assert {k: config[k] for k in CFG.to_dict()} == CFG.to_dict()  # the CLI trained exactly CFG
    assert summaries[0]["runs"][0]["params_sha256"] == summaries[1]["runs"][0]["params_sha256"] == params_sha256(alone.params[0])
    assert csvs[0] == csvs[1] == metrics_csv(alone.metrics, [2], [{}])


def test_make_train_under_users_own_jit_vmap():
    """The documented research entry point: jax.jit(jax.vmap(make_train(cfg)))(keys)."""
    seeds = 3
    state = jax.jit(jax.vmap(make_train(CFG)))(jax.vmap(jax.random.key)(np.arange(seeds)))
    metrics = np.asarray(state.metrics)
    assert metrics.shape == (seeds, CFG.num_evals, 6) == (seeds, 3, 6)
    np.testing.assert_array_equal(metrics[:, :, 0], np.tile([400, 800, 1200], (seeds, 1)))  # env_step of each evaluation
    assert np.all((metrics[:, :, 1] >= 5) & (metrics[:, :, 1] <= 500))  # greedy returns of real CartPole episodes
    assert np.all(np.isfinite(metrics[:, :, 4]))  # learning happened before every evaluation (learning_starts=200)
    expected_eps = [actor.epsilon(CFG, CFG.hyperparams(), s) for s in (400, 800, 1200)]
    np.testing.assert_allclose(metrics[:, :, 5], np.tile(expected_eps, (seeds, 1)), rtol=1e-6)
    assert len({params_sha256(jax.tree.map(lambda x, i=i: x[i], state.learner.params)) for i in range(seeds)}) == seeds
    assert np.all(np.asarray(state.nonfinite_step) == -1)


def test_the_buffer_a_run_fills_follows_each_env_step_by_step():
    """What n-step returns rely on: the item num_envs slots after another is the same env's next step."""
    from cartpole_jax.core.train import make_trainer

    cfg = CFG.replace(num_envs=3, buffer_size=301, total_env_steps=900, learning_starts=600, num_chunks=1)
    trainer = make_trainer(cfg)
    state = jax.jit(trainer.run_chunk)(trainer.init(jax.random.key(3), cfg.hyperparams()), cfg.hyperparams(), 0)
    b = jax.device_get(state.buffer)
    order = [(int(b.pos) - int(b.size) + k) % 301 for k in range(int(b.size))]  # oldest first, wrapped
    d = jax.tree.map(lambda x: x[order], b.data)
    now, nxt = slice(0, -3), slice(3, None)
    cont = ~d.ended[now]
    assert d.ended.sum() > 10 and np.all(d.ended >= d.done)  # many episodes ended; every failure is an end
    np.testing.assert_array_equal(d.next_obs[now][cont], d.obs[nxt][cont])
    assert np.all(np.abs(d.obs[nxt][~cont]) <= 0.05)  # after an end, a fresh episode


def test_batched_runs_are_as_independent_of_their_neighbours(tmp_path):
    """Under vmap (accelerators' default, `--batching vmap`) a run's bits don't depend on its place in the
    batch, nor on the batch size from 2 runs on (checked by hand for every preset, 2 to 16 runs: a program
    each, too slow to test); a lone run is padded to 2 (program.MIN_VMAP_RUNS), since XLA compiles a
    batch of one into code that rounds otherwise (with 32-unit layers; 16-unit ones happen to agree)."""
    from cartpole_jax.cli import main

    def sha(out, seed: int, seeds: int) -> list[str]:
        argv = ["train", "--quiet", "--out", str(out), "--seed", str(seed), "--seeds", str(seeds), "--devices", "1", "--batching", "vmap"]
        assert main([*argv, *SET_ARGS, "--set", "hidden_sizes=[32,32]"]) == 0
        return [r["params_sha256"] for r in json.loads((out / "summary.json").read_text())["runs"]]

    # the same compiled program twice (the lone run's padding makes it the pair's), so the second compile is a cache hit
    [alone] = sha(tmp_path / "alone", seed=1, seeds=1)
    pair = sha(tmp_path / "pair", seed=0, seeds=2)
    assert pair[1] == alone != pair[0]
