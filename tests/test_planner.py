"""Memory planner: exact shape bookkeeping, the estimate vs the compiled program, refusing misfits."""

import subprocess
import sys

import jax
import pytest

from cartpole_jax.cli import main
from cartpole_jax.config import Config, ConfigError
from cartpole_jax.planner import attach_compiled, check_fit, make_plan, require_fit, state_breakdown

TINY = dict(total_env_steps=1200, num_envs=2, buffer_size=500, batch_size=32, learning_starts=200,
            hidden_sizes=(16, 16), eval_every=400, eval_episodes=4, num_chunks=3)


def test_breakdown_counts_bytes_exactly():
    parts = state_breakdown(Config(**TINY))
    assert parts["replay buffer"] == 500 * (4 * 4 + 4 + 4 + 4 * 4 + 1 + 1) + 8  # obs, action, reward, next_obs, done, ended; pos, size
    params = (4 * 16 + 16) + (16 * 16 + 16) + (16 * 2 + 2)
    assert parts["params"] == parts["target params"] == params * 4
    assert parts["optimizer state"] >= 2 * params * 4  # adam: mu and nu
    assert parts["metrics"] == Config(**TINY).num_evals * 6 * 4
    assert parts["env states"] > 0 and parts["other"] > 0


@pytest.mark.parametrize("num_runs", [1, 3])
def test_estimate_within_10_percent_of_memory_analysis(num_runs):
    plan = attach_compiled(make_plan(Config(**TINY), num_runs, jax.devices()[:1]), jax.devices()[:1])
    if not plan.compiled:
        pytest.skip("backend gives no memory analysis")
    assert abs(plan.estimate - plan.compiled["peak"]) <= 0.10 * plan.compiled["peak"], (plan.estimate, plan.compiled)
    state = sum(plan.breakdown.values())
    assert abs(plan.compiled["arguments"] - num_runs * state) <= 0.10 * num_runs * state


def test_max_runs_is_consistent_with_capacity():
    plan = make_plan(Config(buffer_size=100_000), 8, jax.devices()[:1])
    assert plan.max_runs_per_device >= 1 and plan.fits
    assert make_plan(Config(buffer_size=100_000), plan.max_runs_per_device + 1, jax.devices()[:1]).fits is False


def test_refuses_what_will_not_fit():
    with pytest.raises(ConfigError) as err:
        require_fit(Config(buffer_size=1_000_000_000), 64)
    msg = str(err.value)
    assert "will not fit" in msg and "GiB" in msg and "replay buffer" in msg and "\n" not in msg
    check_fit([make_plan(Config(**TINY), 4, jax.devices()[:1])])  # small: no error


def test_sweep_refuses_huge_grid_before_writing(tmp_path):
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "cartpole_jax", "sweep", "--set", "buffer_size=1000000000", "--seeds", "64",
            "--grid", "learning_rate=1e-3,2e-3", "--out", str(out)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("cartpole-jax: error: 128 runs will not fit") and "cartpole-jax plan" in lines[0]
    assert not out.exists()


def test_plan_command_reports(capsys):
    assert main(["plan", "--set", "buffer_size=20000", "--seeds", "4", "--grid", "gamma=0.9,0.99", "--no-compile"]) == 0
    text = capsys.readouterr().out
    for needle in ("replay buffer", "optimizer state", "env states", "estimated peak per device", "run(s) per device", "verdict: fits"):
        assert needle in text
    assert main(["plan", "--set", "buffer_size=1000000000", "--seeds", "64"]) == 1
    assert "DOES NOT FIT" in capsys.readouterr().out
