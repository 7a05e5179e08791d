"""A catalogue of wrong invocations: each exits 2 with one line on stderr that names the culprit, and touches nothing.

Every case runs `python -m cartpole_jax ...` (config, train, eval, render, resume, sweep, plan) in a fresh
process (cwd: a scratch directory holding the
files below). Each costs a Python start plus the package's imports (jax, flax, gymnax), a few seconds;
the in-process rules themselves are covered case by case in test_config.py. To cover a new command,
add rows to CASES.

Scratch directory: out/keep.txt (a non-empty run directory), afile (a plain file), bad.toml (invalid TOML),
binary.toml (not UTF-8), unknown.toml (an unknown key), confdir/ (a directory).
"""

import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import pytest

TINY = ("--set", "total_env_steps=400", "--set", "buffer_size=100", "--set", "batch_size=8", "--set", "learning_starts=50",
        "--set", "hidden_sizes=[8]", "--set", "num_chunks=1", "--set", "eval_every=400", "--set", "eval_episodes=1")


class Case(NamedTuple):
    id: str
    argv: tuple[str, ...]
    names: str  # the field, flag or path the error line must mention
    xfail: str = ""  # reason, for a known bug


def cfg(*sets: str) -> tuple[str, ...]:
    return tuple(a for s in sets for a in ("--set", s))


CASES = [
    # counts
    Case("seeds-zero", ("train", "--seeds", "0", *TINY), "--seeds"),
    Case("seeds-not-int", ("train", "--seeds", "x", *TINY), "--seeds"),
    Case("seed-negative", ("train", "--seed", "-1", *TINY), "--seed"),
    Case("total-steps-zero", ("config", *cfg("total_env_steps=0")), "total_env_steps"),
    Case("train-total-steps-zero", ("train", *TINY, *cfg("total_env_steps=0")), "total_env_steps"),
    Case("num-envs-fraction", ("config", *cfg("num_envs=1.5")), "num_envs"),
    # floats
    Case("lr-nan", ("config", *cfg("learning_rate=nan")), "learning_rate"),
    Case("gamma-inf", ("config", *cfg("gamma=inf")), "gamma"),
    Case("gamma-above-one", ("config", *cfg("gamma=1.5")), "gamma"),
    Case("gamma-negative", ("train", *TINY, *cfg("gamma=-0.1")), "gamma"),
    Case("eps-start-above-one", ("config", *cfg("eps_start=1.5")), "eps_start"),
    Case("eps-end-above-start", ("config", *cfg("eps_start=0.1", "eps_end=0.5")), "eps_end"),
    Case("huge-integer", ("config", *cfg("gamma=1" + "0" * 400)), "gamma"),
    # relations
    Case("batch-over-buffer", ("config", *cfg("buffer_size=500", "batch_size=600")), "batch_size"),
    Case("learning-starts-beyond-total", ("config", *cfg("total_env_steps=1000", "learning_starts=1000")), "learning_starts"),
    Case("train-batch-over-buffer", ("train", *TINY, *cfg("batch_size=200")), "batch_size"),
    Case("steps-beyond-int32", ("train", "--out", "big", *TINY, *cfg("total_env_steps=100000000000000000000")), "total_env_steps"),
    # keys, types and choices
    Case("unknown-key", ("config", *cfg("gama=0.9")), "did you mean 'gamma'"),
    Case("train-unknown-key", ("train", *TINY, *cfg("learning_rat=0.1")), "did you mean 'learning_rate'"),
    Case("hidden-sizes-string", ("config", *cfg("hidden_sizes=big")), "hidden_sizes"),
    Case("double-dqn-int", ("config", *cfg("double_dqn=3")), "double_dqn"),
    Case("unknown-optimizer", ("config", *cfg("optimizer=adamm")), "did you mean 'adam'"),
    Case("bad-optimizer-kwarg", ("config", *cfg("optimizer_kwargs={foo=1}")), "optimizer_kwargs.foo"),
    Case("unknown-preset", ("config", "--preset", "seed-tutorail"), "did you mean 'seed-tutorial'"),
    # malformed --set
    Case("set-without-equals", ("config", "--set", "gamma"), "--set"),
    Case("set-empty-value", ("config", "--set", "gamma="), "--set"),
    # files
    Case("config-missing", ("config", "--config", "missing.toml"), "missing.toml"),
    Case("config-bad-toml", ("config", "--config", "bad.toml"), "bad.toml"),
    Case("config-not-utf8", ("train", "--config", "binary.toml", *TINY), "binary.toml"),
    Case("config-unknown-key", ("config", "--config", "unknown.toml"), "did you mean 'gamma'"),
    # run directory and devices
    Case("out-not-empty", ("train", "--out", "out", *TINY), "--out out:"),
    Case("out-is-file", ("train", "--out", "afile", *TINY), "--out afile:"),
    Case("devices-too-many", ("train", "--devices", "4096", *TINY), "--devices"),
    Case("batching-unknown", ("train", "--batching", "lanes", *TINY), "--batching"),
    # the other commands: eval, render, resume, sweep, plan
    Case("eval-missing-dir", ("eval", "nosuchdir"), "nosuchdir"),
    Case("eval-not-a-run", ("eval", "out"), "out: no policy.npz"),
    Case("eval-episodes-zero", ("eval", "out", "--episodes", "0"), "--episodes"),
    Case("eval-not-a-policy-file", ("eval", "afile"), "afile"),
    Case("render-missing-dir", ("render", "nosuchdir"), "nosuchdir"),
    Case("render-max-steps-zero", ("render", "out", "--max-steps", "0"), "--max-steps"),
    Case("resume-missing-dir", ("resume", "nosuchdir"), "nosuchdir"),
    Case("resume-not-a-run", ("resume", "out"), "out: not a run directory"),
    Case("resume-with-set", ("resume", "out", "--set", "gamma=0.5"), "--set"),
    Case("sweep-unknown-key", ("sweep", "--grid", "gama=0.1"), "did you mean 'gamma'"),
    Case("sweep-empty-values", ("sweep", "--grid", "learning_rate="), "learning_rate"),
    Case("sweep-wrong-type", ("sweep", "--grid", "learning_rate=abc"), "learning_rate"),
    Case("plan-seeds-zero", ("plan", "--seeds", "0"), "--seeds"),
    Case("plan-bad-value", ("plan", "--set", "gamma=2"), "gamma"),
    Case("plan-grid-out-of-range", ("plan", "--grid", "tau=2"), "tau"),
    # argparse itself
    Case("unknown-flag", ("train", "--bogus", *TINY), "--bogus"),
    Case("no-command", (), "command"),
]


def scratch(root: Path) -> None:
    (root / "out").mkdir()
    (root / "out" / "keep.txt").write_bytes(b"an earlier run's file\n")
    (root / "afile").write_bytes(b"not a directory\n")
    (root / "bad.toml").write_text("gamma = \n")
    (root / "binary.toml").write_bytes(b"gamma = 0.5\n\xff\xfe\n")
    (root / "unknown.toml").write_text("gama = 0.9\n")
    (root / "confdir").mkdir()


def snapshot(root: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


def run_cli(argv, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cartpole_jax", *argv], cwd=cwd, capture_output=True, text=True, timeout=300)


def _param(case: Case):
    marks = [pytest.mark.xfail(strict=True, reason="bug: " + case.xfail)] if case.xfail else []
    return pytest.param(case, id=case.id, marks=marks)


def test_catalogue_is_big_and_unique():
    assert len(CASES) >= 25 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_bad_invocation(case: Case, tmp_path):
    scratch(tmp_path)
    before = snapshot(tmp_path)
    t0 = time.perf_counter()
    proc = run_cli(case.argv, tmp_path)
    elapsed = time.perf_counter() - t0
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert len(lines) == 1 and lines[0].strip(), proc.stderr[-2000:]  # one line: no traceback, no usage
    assert lines[0].startswith("cartpole-jax: error: ") and "Traceback" not in proc.stderr
    assert case.names in lines[0], lines[0]
    assert proc.stdout == ""
    assert snapshot(tmp_path) == before  # nothing created, nothing changed
    assert elapsed < 60, elapsed  # import and validation only (about 2 s on an idle machine); nothing is trained


@pytest.mark.parametrize("argv", [["config", "--set", "gamma=2"], ["train", "--set", "gamma=2"]])
def test_bad_config_is_reported_before_the_trainer_is_imported(argv, tmp_path):
    """Validation errors come before gymnax (which pulls in seaborn and scipy) and the trainer are imported: about a second each."""
    code = (
        f"import sys\nfrom cartpole_jax.cli import main\nrc = main({argv!r})\n"
        "heavy = sorted(m for m in ('gymnax', 'seaborn', 'cartpole_jax.train') if m in sys.modules)\n"
        "print(rc, *heavy)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.stdout.split() == ["2"], proc.stdout


def test_the_entry_point_exits_with_main_s_code_after_every_exit_handler_and_all_output(tmp_path):
    """`cli.run` skips the interpreter's teardown, but only after the exit handlers libraries register
    during main (here one made to look like them) and with stdout flushed."""
    code = (
        "import atexit, sys\nfrom cartpole_jax import cli\nreal = cli.main\n"
        "def main(argv=None):\n"
        "    atexit.register(lambda: print('a library handler ran'))\n"
        "    return real(sys.argv[1:])\n"
        "cli.main = main\ncli.run()\n"
    )
    run = lambda *argv: subprocess.run([sys.executable, "-c", code, *argv], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    ok = run("config")
    assert ok.returncode == 0 and ok.stdout.rstrip().endswith("a library handler ran") and "learning_rate" in ok.stdout
    bad = run("config", "--set", "gamma=2")
    assert bad.returncode == 2 and bad.stderr.startswith("cartpole-jax: error: gamma must be") and bad.stdout == "a library handler ran\n"
