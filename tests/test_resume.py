"""Kill a real `cartpole-jax train` and resume it: the per-seed results equal an uninterrupted run's.

Also Ctrl-C (exit 130, a checkpoint, the resume command printed) and the non-finite guard (exit 1,
the seed and env step named, the failure in summary.json, the last good checkpoint kept).
"""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cartpole_jax import checkpoint
from cartpole_jax.cli import main

# 800 vector steps in 8 chunks; checkpoint_every=1 makes each chunk slow enough to be hit mid-run.
TINY = [
    "total_env_steps=1600", "num_envs=2", "buffer_size=500", "batch_size=32", "learning_starts=200",
    "hidden_sizes=[16,16]", "eval_every=400", "eval_episodes=4", "num_chunks=8",
]
PER_SEED = ("seed", "params_sha256", "final_eval_return_mean", "first_solved_env_step")


def sets(*extra):
    return [arg for s in (*TINY, *extra) for arg in ("--set", s)]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Subprocess environment: CPU, and a compilation cache shared by this module's processes."""
    cache = tmp_path_factory.mktemp("jax-cache")
    return {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_COMPILATION_CACHE_DIR": str(cache),
            "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The reference: the same run, never interrupted and never checkpointed."""
    out = tmp_path_factory.mktemp("ref") / "run"
    assert main(["train", "--out", str(out), "--seeds", "2", "--quiet", *sets("checkpoint_every=0")]) == 0
    return out


def per_seed(run_dir: Path) -> list[dict]:
    runs = json.loads((run_dir / "summary.json").read_text())["runs"]
    return [{k: r[k] for k in PER_SEED} for r in runs]


def start_train(out: Path, env, *extra) -> subprocess.Popen:
    argv = [sys.executable, "-m", "cartpole_jax", "train", "--out", str(out), "--seeds", "2", "--quiet", *sets(*extra)]
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_checkpoint(proc: subprocess.Popen, out: Path, timeout: float = 400) -> None:
    deadline = time.monotonic() + timeout
    while not checkpoint.steps(out):
        if proc.poll() is not None:
            pytest.fail(f"train exited ({proc.returncode}) before its first checkpoint: {proc.stderr.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("no checkpoint appeared")
        time.sleep(0.02)


def resume(out: Path, env) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "cartpole_jax", "resume", str(out), "--quiet"]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=500)


def test_sigkill_then_resume_equals_uninterrupted(tmp_path, env, uninterrupted):
    out = tmp_path / "run"
    proc = start_train(out, env, "checkpoint_every=1")
    wait_for_checkpoint(proc, out)
    delay = random.uniform(0.0, 0.6)  # lands anywhere: mid-chunk, mid-save, between the two
    time.sleep(delay)
    proc.kill()
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL, f"train finished before the kill ({delay=:.2f}s)"
    assert not (out / "summary.json").exists()
    kept = checkpoint.steps(out)
    # keep_checkpoints is 2; a kill after a save's rename but before it prunes the oldest leaves a third
    assert kept and kept[-1] < 8 and len(kept) <= 3
    done = resume(out, env)
    assert done.returncode == 0, done.stderr
    assert len(checkpoint.steps(out)) <= 2  # the resumed run's saves prune back to keep_checkpoints
    assert per_seed(out) == per_seed(uninterrupted), f"resumed from chunk {kept[-1]} after {delay=:.2f}s"
    assert (out / "metrics.csv").read_text() == (uninterrupted / "metrics.csv").read_text()


def test_ctrl_c_saves_prints_resume_command_and_exits_130(tmp_path, env, uninterrupted):
    out = tmp_path / "run"
    proc = start_train(out, env, "checkpoint_every=1")
    wait_for_checkpoint(proc, out)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert f"Resume with: cartpole-jax resume {out}" in err
    stopped_at = checkpoint.steps(out)[-1]
    assert 1 <= stopped_at < 8 and f"after chunk {stopped_at}/8" in err
    assert not (out / "summary.json").exists()
    done = resume(out, env)
    assert done.returncode == 0, done.stderr
    assert per_seed(out) == per_seed(uninterrupted)


@pytest.mark.parametrize("flag", [["--set", "learning_rate=0.1"], ["--batching", "vmap"]])
def test_resume_refuses_flags_that_change_results(tmp_path, uninterrupted, capsys, flag):
    assert main(["resume", str(uninterrupted), *flag]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"cartpole-jax: error: resume takes no {flag[0]}") and err.count("\n") == 1


def test_a_batched_run_resumes_batched(tmp_path, uninterrupted):
    """--batching vmap is recorded with the checkpoints; resume batches the rest the same way, bit for bit."""
    out = tmp_path / "run"
    argv = ["train", "--out", str(out), "--seeds", "2", "--devices", "1", "--batching", "vmap", "--quiet"]
    assert main([*argv, *sets("checkpoint_every=2", "keep_checkpoints=4")]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["batching"] == "vmap" and checkpoint.steps(out) == [2, 4, 6, 8]
    assert per_seed(out) != per_seed(uninterrupted)  # batched kernels round differently from one run's
    finished = per_seed(out)
    for step in (8, 6):  # back to chunk 4: the resumed run must redo chunks 5-8 batched
        shutil.rmtree(checkpoint.directory(out) / str(step))
    (out / "summary.json").unlink()
    assert main(["resume", str(out), "--quiet"]) == 0
    assert per_seed(out) == finished


def test_non_finite_loss_stops_with_seed_and_step_and_keeps_checkpoints(tmp_path, capfd):
    out = tmp_path / "run"
    # Learning starts in chunk 3 (env steps 400-600), where SGD with lr 1e30 overflows at once.
    argv = ["train", "--out", str(out), "--seeds", "2", "--quiet",
            *sets("learning_starts=500", "learning_rate=1e30", 'optimizer="sgd"', "checkpoint_every=1")]
    assert main(argv) == 1
    err = capfd.readouterr().err
    assert err.startswith("cartpole-jax: error: seed 0: loss became non-finite at env step ") and err.count("\n") == 1, err
    failed = json.loads((out / "summary.json").read_text())["failed"]
    assert failed["seed"] == 0 and failed["reason"] == "non-finite loss"
    assert 500 <= failed["env_step"] <= 600 and f"env step {failed['env_step']}" in err
    assert checkpoint.steps(out) == [1, 2] and "last good checkpoint: chunk 2" in err
    assert not (out / "policy.npz").exists()
