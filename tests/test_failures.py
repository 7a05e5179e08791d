"""Failing environments and bad files (issues 17 and 22): one line on stderr, a documented exit code,
nothing already saved lost, no number wrong.

Signals are real (os.kill of this process) but sent from inside the run at a chosen moment, so each
case is deterministic and runs in-process; the tiny run's program compiles once for the module.
"""

import contextlib
import errno
import io
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cartpole_jax import checkpoint, outputs, plots, policy, runlock
from cartpole_jax.cli import main
from cartpole_jax.config import Config, ConfigError, validate
from cartpole_jax.errors import PolicyError, UsageError
from cartpole_jax.sweep import parse_grid, plan_runs

# tests/test_resume.py's tiny run (8 chunks, 2 seeds) and its reference: a program compiled once serves both.
TINY = [
    "total_env_steps=1600", "num_envs=2", "buffer_size=500", "batch_size=32", "learning_starts=200",
    "hidden_sizes=[16,16]", "eval_every=400", "eval_episodes=4", "num_chunks=8", "checkpoint_every=0",
]
TRAIN = ["--seeds", "2", "--quiet", *[a for s in TINY for a in ("--set", s)]]
PER_SEED = ("seed", "params_sha256", "final_eval_return_mean", "first_solved_env_step")


def per_seed(run_dir: Path) -> list[dict]:
    return [{k: r[k] for k in PER_SEED} for r in json.loads((run_dir / "summary.json").read_text())["runs"]]


def one_error_line(err: str, *needles: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("cartpole-jax: error: ") and "Traceback" not in err, err
    assert all(n in lines[0] for n in needles), lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ref") / "run"
    assert main(["train", "--out", str(out), *TRAIN]) == 0
    return out


def signal_after_first_chunk(monkeypatch, *signums):
    """Send the signals to this process as the driver looks at the first chunk's results."""
    from cartpole_jax import driver

    to_host, calls = driver.to_host, []

    def to_host_then_signal(tree):
        calls.append(1)
        if len(calls) == 1:
            for s in signums:
                os.kill(os.getpid(), s)
        return to_host(tree)

    monkeypatch.setattr(driver, "to_host", to_host_then_signal)


@pytest.fixture(scope="module")
def stopped_with_stderr(tmp_path_factory) -> tuple[Path, str]:
    """The tiny run, stopped by SIGTERM (and a SIGINT right after it) after its first chunk, and its stderr."""
    out = tmp_path_factory.mktemp("stopped") / "run"
    with pytest.MonkeyPatch.context() as monkeypatch, contextlib.redirect_stderr(io.StringIO()) as err:
        signal_after_first_chunk(monkeypatch, signal.SIGTERM, signal.SIGINT)  # the second one must do no harm
        assert main(["train", "--out", str(out), *TRAIN]) == 143
    return out, err.getvalue()


@pytest.fixture
def stopped(stopped_with_stderr) -> Path:
    """The stopped run directory (tests copy it before changing it)."""
    return stopped_with_stderr[0]


# --- items 13, 14, 3, 11 (absl): SIGTERM, resume-if-exists, a finished run, a damaged checkpoint metadata ---


def test_sigterm_then_resume_if_exists_equals_uninterrupted(reference, stopped, tmp_path, capfd):
    out = tmp_path / "run"
    shutil.copytree(stopped, out)
    assert checkpoint.steps(out) == [1] and not (out / "summary.json").exists() and not (out / ".lock").exists()
    (out / "checkpoints/1/_CHECKPOINT_METADATA").write_text("garbage{")  # orbax logs ERRORs and carries on
    assert main(["train", "--out", str(out), "--resume-if-exists", *TRAIN]) == 0
    assert capfd.readouterr().err == ""
    assert per_seed(out) == per_seed(reference)
    assert (out / "metrics.csv").read_text() == (reference / "metrics.csv").read_text()
    summary = (out / "summary.json").read_bytes()
    # Finished: the same command does nothing, and resume refuses; the numbers stay as they were.
    assert main(["train", "--out", str(out), "--resume-if-exists", *TRAIN]) == 0
    assert "already finished" in capfd.readouterr().err
    assert main(["resume", str(out), "--quiet"]) == 2
    one_error_line(capfd.readouterr().err, "already finished")
    assert (out / "summary.json").read_bytes() == summary
    # Another config in the same directory is not this run: refused as a non-empty --out, as without the flag.
    assert main(["train", "--out", str(out), "--resume-if-exists", *TRAIN, "--set", "gamma=0.9"]) == 2
    one_error_line(capfd.readouterr().err, "not empty")


def test_sigterm_says_how_to_resume_and_resume_equals_uninterrupted(reference, stopped, tmp_path, capfd):
    out = tmp_path / "run"
    shutil.copytree(stopped, out)
    assert main(["resume", str(out), "--quiet"]) == 0
    assert per_seed(out) == per_seed(reference)


def test_sigterm_stops_after_the_chunk_with_a_checkpoint_and_the_resume_command(stopped_with_stderr):
    out, err = stopped_with_stderr
    assert "SIGTERM: stopping after this chunk" in err and "already stopping" in err  # the SIGINT after it
    assert f"interrupted (SIGTERM) after chunk 1/8; checkpoint saved. Resume with: cartpole-jax resume {out}" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 3, err


# --- item 1: a signal during the final writes ---


@pytest.mark.parametrize("when", ["metrics", "png"])
def test_signal_during_final_writes_finishes_them(reference, tmp_path, monkeypatch, capfd, when):
    out = tmp_path / "run"
    module, name = (outputs, "metrics_csv") if when == "metrics" else (plots, "learning_curve")
    original = getattr(module, name)

    def interrupted(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, interrupted)
    assert main(["train", "--out", str(out), *TRAIN]) == 130
    err = capfd.readouterr().err
    assert "finished and all its files are written" in err and "Traceback" not in err, err
    assert {p.name for p in out.iterdir()} == {"config.json", "metrics.csv", "summary.json", "policy.npz", "learning_curve.png"}
    assert per_seed(out) == per_seed(reference)


# --- item 2: one command per run directory ---


def test_a_run_directory_in_use_is_refused_naming_its_holder(reference, tmp_path, capfd):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text((reference / "config.json").read_text())
    with runlock.hold(out, "cartpole-jax train"):
        assert main(["train", "--out", str(out), "--force", *TRAIN]) == 2
        one_error_line(capfd.readouterr().err, f"pid {os.getpid()}", "cartpole-jax train", "in use")
        assert main(["resume", str(out)]) == 2
        one_error_line(capfd.readouterr().err, f"pid {os.getpid()}", "in use")
    assert sorted(p.name for p in out.iterdir()) == ["config.json"]  # nothing written, the lock file gone


# --- item 4: a full disk ---


def enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_disk_full_at_the_plot_keeps_the_numbers(reference, tmp_path, monkeypatch, capfd):
    out = tmp_path / "run"
    monkeypatch.setattr(plots, "learning_curve", enospc)
    assert main(["train", "--out", str(out), *TRAIN]) == 1
    one_error_line(capfd.readouterr().err, "no space left on device")
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "metrics.csv", "policy.npz", "summary.json"]  # no temp file
    assert per_seed(out) == per_seed(reference)


def test_disk_full_in_a_checkpoint_leaves_no_temp_directory(tmp_path, monkeypatch, capfd):
    import orbax.checkpoint as ocp

    def full(self, step, *args, **kwargs):
        (checkpoint.directory(out) / f"{step}.orbax-checkpoint-tmp-1234").mkdir(parents=True)
        raise ValueError("tensorstore: Error writing local file: No space left on device [OS error 28]")

    out = tmp_path / "run"
    monkeypatch.setattr(ocp.CheckpointManager, "save", full)
    signal_after_first_chunk(monkeypatch, signal.SIGTERM)  # the checkpoint a stop takes
    assert main(["train", "--out", str(out), *TRAIN]) == 1
    stopping, error = capfd.readouterr().err.strip().splitlines()  # the SIGTERM's own line, then the error
    assert stopping.startswith("cartpole-jax: SIGTERM: stopping")
    one_error_line(error, "no space left on device")
    assert list(checkpoint.directory(out).iterdir()) == [] and (out / "config.json").is_file()


# --- items 5, 16: --out paths refused up front ---


@pytest.mark.parametrize("kind", ["5000-chars", "4000-chars-in-short-names", "name-too-long", "under-a-file"])
def test_bad_out_paths_are_one_line_and_create_nothing(tmp_path, capfd, kind):
    (tmp_path / "afile").write_text("x")
    out = {
        "5000-chars": tmp_path / ("x" * 5000),
        "4000-chars-in-short-names": tmp_path.joinpath(*["d" * 99] * 39),  # about 3,960: once accepted
        "name-too-long": tmp_path / ("n" * 300) / "run",
        "under-a-file": tmp_path / "afile" / "run",
    }[kind]
    assert main(["train", "--out", str(out), *TRAIN]) == 2
    line = one_error_line(capfd.readouterr().err, "--out")
    assert len(line) < 400
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


# --- items 6, 7: damaged run files ---


def test_damaged_run_files_before_resume(reference, tmp_path, capfd):
    out = tmp_path / "run"
    out.mkdir()
    for content, says in (("[1, 2]", "not a run config (a JSON list"), ('{"gamma": [1]}', "gamma must be"), ("{", "not a readable")):
        (out / "config.json").write_text(content)
        assert main(["resume", str(out)]) == 2
        one_error_line(capfd.readouterr().err, "config.json", says)
    (out / "config.json").write_text((reference / "config.json").read_text())
    for content in ("[]", "{", '{"env_steps_done": "x"}'):
        (out / "summary.json").write_text(content)
        assert main(["resume", str(out)]) == 2
        one_error_line(capfd.readouterr().err, "summary.json")


def damaged_policies(good: bytes) -> dict[str, bytes]:
    """policy.npz files cut short, and valid zips with wrong contents."""
    files = {f"truncated-{n}": good[:n] for n in (0, 10, 100, 3000, 7000) if n < len(good)}
    with np.load(_write(good), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(str(arrays["meta"]))
    wrong_meta = {
        "no-seeds": {k: v for k, v in meta.items() if k != "seeds"},
        "too-many-layers": {**meta, "hidden_layers": 10**9},
        "unknown-activation": {**meta, "activation": "swish"},
        "meta-a-list": [meta],
        "seeds-not-ints": {**meta, "seeds": ["a", "b"]},
    }
    for name, m in wrong_meta.items():
        files[name] = _npz({**arrays, "meta": np.array(json.dumps(m))})
    files["kernel-wrong-shape"] = _npz({**arrays, "hidden_0/kernel": arrays["hidden_0/kernel"][:, :3]})
    files["kernel-not-float"] = _npz({**arrays, "q/kernel": arrays["q/kernel"].astype(np.int32)})
    files["no-head"] = _npz({k: v for k, v in arrays.items() if not k.startswith("q/")})
    return files


def _write(data: bytes) -> Path:
    import tempfile

    fd, name = tempfile.mkstemp(suffix=".npz")
    os.write(fd, data)
    os.close(fd)
    return Path(name)


def _npz(arrays) -> bytes:
    import io

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def test_damaged_policy_files_are_policy_errors(reference, tmp_path, capfd):
    good = (reference / "policy.npz").read_bytes()
    assert policy.load_policy(reference / "policy.npz", 1)([0.0, 0.0, 0.0, 0.0]) in (0, 1)
    for name, data in damaged_policies(good).items():
        path = tmp_path / name / "policy.npz"
        path.parent.mkdir()
        path.write_bytes(data)
        with pytest.raises(PolicyError) as info:
            policy.load_policy(path)
        assert "\n" not in str(info.value), name
    for command in ("eval", "render"):  # the CLI: one line, exit 2
        assert main([command, str(tmp_path / "truncated-100")]) == 2
        one_error_line(capfd.readouterr().err, "policy.npz")
    assert main(["eval", str(tmp_path / "meta-a-list")]) == 2
    one_error_line(capfd.readouterr().err, "policy.npz")


# --- items 8, 9, 11, 12: refused before anything is written ---


def test_a_bad_optimizer_argument_is_refused_before_writing(tmp_path, capfd):
    with pytest.raises(ConfigError, match=r"^optimizer_kwargs\.b1: optax\.adam fails with b1='x'"):
        validate(Config(optimizer_kwargs={"b1": "x"}))
    assert validate(Config(optimizer="rmsprop", optimizer_kwargs={"decay": 0.9, "eps_in_sqrt": False}))
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), *TRAIN, "--set", 'optimizer_kwargs={b1="x"}']) == 2
    one_error_line(capfd.readouterr().err, "optimizer_kwargs.b1")
    assert not out.exists()


def test_values_that_overflow_float32_and_int32_say_why():
    with pytest.raises(ConfigError, match=r"^failure_reward must be within float32's range"):
        validate(Config(failure_reward=1e308))
    with pytest.raises(ConfigError, match=r"^total_env_steps must be in \[1, 2147483644\]: it is rounded up to a multiple "
                                          r"of num_envs=4, and 2147483647 rounds up to 2147483648"):
        validate(Config(total_env_steps=2**31 - 1))


def test_a_huge_grid_is_refused_unexpanded_and_big_ones_validate_each_value_once(monkeypatch):
    from cartpole_jax import sweep

    calls = {"check_value": 0, "validate": 0}

    def counted(name):
        real = getattr(sweep, name)
        def call(*args, **kwargs):
            calls[name] += 1
            return real(*args, **kwargs)
        return call

    for name in calls:
        monkeypatch.setattr(sweep, name, counted(name))
    big = {k: list(np.linspace(lo, hi, 100).tolist()) for k, lo, hi in
           (("learning_rate", 1e-4, 1e-2), ("gamma", 0.9, 0.99), ("tau", 0.01, 1.0))}
    with pytest.raises(ConfigError) as info:
        plan_runs(Config(), big, range(1))
    assert info.value.param == "grid" and "1,000,000 runs" in str(info.value)
    assert calls == {"check_value": 0, "validate": 0}  # counted, not expanded
    grid = {"learning_rate": big["learning_rate"], "tau": big["tau"], "hidden_sizes": [[8], [16]]}  # 20,000 points
    run_grid, _, groups = plan_runs(Config(), grid, range(1))
    assert len(run_grid) == 20_000 and len(groups) == 2
    assert calls == {"check_value": 202, "validate": 2}  # each value once, each static combination once
    # a relation between vmappable values is still checked point by point
    with pytest.raises(ConfigError, match=r"point eps_start=0.1, eps_end=0.5: eps_end must be in \[0, eps_start=0.1\]"):
        plan_runs(Config(), parse_grid(["eps_start=0.9,0.1", "eps_end=0.5"]), range(1))


def test_an_unusable_compile_cache_is_one_warning(tmp_path):
    import jax

    from cartpole_jax import host

    (tmp_path / "afile").write_text("x")
    warnings = []
    before = jax.config.jax_compilation_cache_dir
    jax.config.update("jax_compilation_cache_dir", None)
    try:
        assert host.use_compilation_cache({host.CACHE_ENV: str(tmp_path / "afile")}, warn=warnings.append) is None
    finally:
        jax.config.update("jax_compilation_cache_dir", before)
    assert len(warnings) == 1 and "afile" in warnings[0] and "\n" not in warnings[0]


# --- item 10: a jax backend that cannot start ---


def test_an_unavailable_backend_is_one_line(reference, monkeypatch, capfd):
    import jax

    def no_gpu(backend=None):
        raise RuntimeError("Unknown backend: 'gpu' requested, but no platforms that are instances of gpu are present.\nmore")

    monkeypatch.setattr(jax, "devices", no_gpu)
    monkeypatch.setenv("JAX_PLATFORMS", "gpu")
    from cartpole_jax.program import pick_devices

    with pytest.raises(UsageError, match=r"^jax backend 'gpu' is not available here \(Unknown backend"):
        pick_devices(None, 2)
    assert main(["eval", str(reference), "--episodes", "1"]) == 2
    one_error_line(capfd.readouterr().err, "'gpu'", "JAX_PLATFORMS=cpu")


# --- item 15: a damaged checkpoint, in a process of its own (the noise came at its exit) ---


def test_a_corrupt_checkpoint_is_one_line_to_the_end(stopped, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(stopped, out)
    data = max((out / "checkpoints/1/state").rglob("d/*"), key=lambda p: p.stat().st_size)
    os.truncate(data, 100)
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    argv = [sys.executable, "-m", "cartpole_jax", "resume", str(out), "--quiet"]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2
    one_error_line(proc.stderr, "checkpoint is corrupt")
