"""Multi-process jobs on one machine: 2 CPU processes on 127.0.0.1, one CPU device each, gloo collectives.

Each launcher is used once: the flags (train), SLURM's variables (sweep) and JAX_* env vars (resume).
Every run's bits equal one process with 2 devices; only process 0 writes; a dead peer or a bad
coordinator is one line and a bounded wait. See docs/multihost.md.
"""

import csv
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cartpole_jax import checkpoint
from cartpole_jax.cli import main
from cartpole_jax.distributed import Spec, initialize, parse, slurm
from cartpole_jax.errors import DistributedError

# 4 chunks, each ending with a checkpoint (train): slow enough to kill a peer mid-run.
TINY = ["total_env_steps=1600", "num_envs=2", "buffer_size=200", "batch_size=16", "learning_starts=100",
        "hidden_sizes=[8]", "eval_every=400", "eval_episodes=2", "num_chunks=4", "learning_rate=1e-3"]
SETS = [arg for s in TINY for arg in ("--set", s)]
GRID = ["--grid", "learning_rate=1e-3,3e-3"]  # with --seeds 1, the same 2-run program as train --seeds 2
TIMEOUT = 20  # CARTPOLE_JAX_DISTRIBUTED_TIMEOUT for these jobs: a broken one ends within it
SHORT = 3  # ... and for a process whose coordinator never answers
BOUND = 60  # seconds a survivor may take to leave after its peer died (docs/multihost.md)

# Runs the CLI and logs every write Python makes under WATCH (files, directories, renames) to LOG.
LAUNCH = """
import os, sys
watch, log = os.path.realpath(sys.argv[1]), sys.argv[2]
EVENTS = ("os.mkdir", "os.rename", "os.replace", "os.remove", "os.rmdir", "os.truncate", "shutil.rmtree")

def hook(event, args):
    if not args or not isinstance(args[0], (str, bytes, os.PathLike)):
        return
    if event == "open":
        mode, flags = args[1], args[2] or 0
        writing = any(c in mode for c in "wax+") if mode else bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
    else:
        writing = event in EVENTS
    path = os.path.realpath(os.fsdecode(args[0])) if writing else ""
    if path.startswith(watch) and path != os.path.realpath(log):
        with open(log, "a") as f:
            f.write(f"{event} {os.fsdecode(args[0])}\\n")

sys.addaudithook(hook)
from cartpole_jax.cli import main
sys.exit(main(sys.argv[3:]))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def base_env(tmp_path_factory):
    """CPU, one device per process, and a compilation cache shared by this module's processes."""
    cache = tmp_path_factory.mktemp("jax-cache")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "JAX_", "XLA_FLAGS"))}
    return {**env, "JAX_PLATFORMS": "cpu", "JAX_NUM_CPU_DEVICES": "1", "JAX_COMPILATION_CACHE_DIR": str(cache),
            "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0", "CARTPOLE_JAX_DISTRIBUTED_TIMEOUT": str(TIMEOUT)}


def start(argv, env, watch: Path, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-c", LAUNCH, str(watch), str(log), *argv]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(procs, timeout: float = 300) -> list[tuple[int, str, str]]:
    """(exit code, stdout, stderr) of each process; none may outlive `timeout`."""
    deadline = time.monotonic() + timeout
    out = []
    for p in procs:
        try:
            stdout, stderr = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail(f"a process of the job hung for {timeout} s")
        out.append((p.returncode, stdout, stderr))
    return out


def job(argv, base_env, tmp_path: Path, watch: Path, name: str, env_of=None) -> list[subprocess.Popen]:
    """Start 2 processes of `cartpole-jax argv`; env_of(i, port) adds process i's variables (default: the flags)."""
    port = free_port()
    procs = []
    for i in range(2):
        extra = env_of(i, port) if env_of else {}
        flags = [] if env_of else ["--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", str(i)]
        procs.append(start([*argv, *flags], {**base_env, **extra}, watch, tmp_path / f"{name}-writes-{i}.log"))
    return procs


def writes(tmp_path: Path, name: str, i: int) -> list[str]:
    log = tmp_path / f"{name}-writes-{i}.log"
    return log.read_text().splitlines() if log.exists() else []


def reference(out: Path) -> Path:
    """The same sweep in this one process (its learning_rate=1e-3 runs are the train runs): a run's bits
    do not depend on the device count or its neighbours (CPU runs are `lax.map`ped)."""
    assert main(["sweep", *SETS, *GRID, "--seeds", "2", "--quiet", "--out", str(out)]) == 0
    return out


def runs(run_dir: Path) -> dict:
    """(seed, learning rate) -> params_sha256 and final eval of each run in summary.json."""
    summary = json.loads((run_dir / "summary.json").read_text())
    return {(r["seed"], float(r.get("grid", {}).get("learning_rate", 1e-3))):
            (r["params_sha256"], r["final_eval_return_mean"], r["final_eval_return_std"]) for r in summary["runs"]}


def curves(run_dir: Path) -> dict:
    """(seed, learning rate) -> the run's metrics.csv rows, without the run index and grid columns."""
    rows = list(csv.DictReader(io.StringIO((run_dir / "metrics.csv").read_text())))
    out: dict = {}
    for r in rows:
        key = (int(r.pop("seed")), float(r.pop("learning_rate", None) or 1e-3))
        r.pop("run")
        out.setdefault(key, []).append(r)
    return out


def slurm_env(i: int, port: int) -> dict:
    """What `srun --ntasks=2` on one node sets for task i (the variables jax's SlurmCluster reads)."""
    return {"SLURM_JOB_ID": "4242", "SLURM_NTASKS": "2", "SLURM_PROCID": str(i), "SLURM_LOCALID": str(i),
            "SLURM_STEP_NODELIST": "127.0.0.1", "SLURM_STEP_NUM_NODES": "1", "JAX_COORDINATOR_PORT": str(port)}


def test_sweep_then_train_killed_and_resumed_on_two_processes_equal_one_process(tmp_path, base_env):
    """One test, in this order: one reference, and the sweep's compiled program cached for train and resume."""
    ref = reference(tmp_path / "reference")
    for name in ("sweep-job", "train-job"):
        (tmp_path / name).mkdir()
    check_sweep(tmp_path / "sweep-job", base_env, ref)
    check_train_killed_then_resumed(tmp_path / "train-job", base_env, ref)


def check_sweep(tmp_path: Path, base_env, reference: Path) -> None:
    """sweep on 2 tasks launched the SLURM way: process 0 alone writes, every run equals the reference."""
    out = tmp_path / "sweep"
    argv = ["sweep", *SETS, *GRID, "--seeds", "1", "--devices", "all", "--quiet", "--out", str(out)]
    results = finish(job(argv, base_env, tmp_path, tmp_path, "sweep", env_of=slurm_env))
    assert [r[0] for r in results] == [0, 0], [r[2][-2000:] for r in results]
    assert json.loads((out / "summary.json").read_text())["num_devices"] == 2  # one per process
    assert runs(out) == {k: v for k, v in runs(reference).items() if k[0] == 0} and len(runs(out)) == 2
    assert curves(out) == {k: v for k, v in curves(reference).items() if k[0] == 0}
    assert writes(tmp_path, "sweep", 0) and writes(tmp_path, "sweep", 1) == []
    assert [p.name for p in tmp_path.iterdir() if p.is_dir()] == ["sweep"]


def kill_after_first_checkpoint(argv, base_env, tmp_path: Path, out: Path, victim: int) -> tuple[list, float]:
    """Start 2 processes of `train argv`, SIGKILL process `victim` once `out` holds a checkpoint; each
    process's (exit code, stdout, stderr), and the seconds the survivor took to leave after the kill."""
    procs = job(argv, base_env, tmp_path, tmp_path, "train")
    deadline = time.monotonic() + 300
    while not checkpoint.steps(out):
        assert all(p.poll() is None for p in procs) and time.monotonic() < deadline, "train ended before a checkpoint"
        time.sleep(0.02)
    procs[victim].send_signal(signal.SIGKILL)
    killed = time.monotonic()
    results = finish(procs, timeout=BOUND + 30)
    return results, time.monotonic() - killed


def check_train_killed_then_resumed(tmp_path: Path, base_env, reference: Path) -> None:
    """train by flags, process 1 SIGKILLed: process 0 leaves with one line. The same command again with
    --resume-if-exists (a requeued job), launched by JAX_* env vars, continues it and equals the reference;
    then `resume` of the finished run is one refusal on both processes."""
    out = tmp_path / "run"
    argv = ["train", *SETS, "--set", "checkpoint_every=1", "--seeds", "2", "--devices", "all", "--out", str(out), "--resume-if-exists"]
    ((code, _, err), _), took = kill_after_first_checkpoint([*argv, "--quiet"], base_env, tmp_path, out, victim=1)
    lines = err.strip().splitlines()
    assert code == 1 and took < BOUND, (code, took, err[-2000:])
    assert lines[-1].startswith("cartpole-jax: error: process 0 of 2: the multi-process job broke")
    assert sum(line.startswith("cartpole-jax: error:") for line in lines) == 1 and "Traceback" not in err
    kept = checkpoint.steps(out)
    assert kept and kept[-1] < 4 and not (out / "summary.json").exists()
    assert writes(tmp_path, "train", 1) == []  # process 1 made no file before it was killed

    port = free_port()
    jax_env = lambda i, _: {"JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": str(i)}
    results = finish(job(argv, base_env, tmp_path, out, "resume", env_of=jax_env))
    assert [r[0] for r in results] == [0, 0], [r[2][-2000:] for r in results]
    assert f"after chunk {kept[-1]}/4" in results[0][1]  # process 0 reports (and shows progress); process 1 is silent
    assert all(line.startswith("[Gloo]") for line in results[1][1].splitlines()) and not results[1][2].strip()
    ref = {k: v for k, v in runs(reference).items() if k[1] == 1e-3}
    assert runs(out) == ref
    assert curves(out) == {k: v for k, v in curves(reference).items() if k[1] == 1e-3}
    assert writes(tmp_path, "resume", 0) and writes(tmp_path, "resume", 1) == []

    port = free_port()
    results = finish(job(["resume", str(out)], base_env, tmp_path, out, "again", env_of=jax_env))
    refusal = "the run is already finished (its results are in summary.json); nothing to resume"
    for code, _, err in results:
        assert code == 2 and err.strip().splitlines()[-1].endswith(refusal), err[-2000:]


def test_process_0_killed_ends_process_1_at_once_with_one_error_line(tmp_path, base_env):
    """The coordinator dies with process 0: process 1 leaves at once, in one line.

    Usually its next collective fails first (exit 1); sometimes jax's runtime notices the lost
    coordinator first and aborts the process (SIGABRT), and runtime_log writes the line in its place.
    """
    out = tmp_path / "run"
    argv = ["train", *SETS, "--set", "checkpoint_every=1", "--seeds", "2", "--devices", "all", "--quiet", "--out", str(out)]
    (_, (code, _, err)), took = kill_after_first_checkpoint(argv, base_env, tmp_path, out, victim=0)
    assert code in (1, -signal.SIGABRT) and took < BOUND, (code, took, err[-2000:])
    [line] = err.strip().splitlines()  # jax's runtime lines about the lost coordinator are filtered out (runtime_log)
    ours = "the multi-process job broke" if code == 1 else "jax's distributed runtime ended the job"
    assert line.startswith(f"cartpole-jax: error: process 1 of 2: {ours}"), err[-2000:]
    assert checkpoint.steps(out)  # what process 0 saved is still there


def test_process_0_refusing_the_run_directory_is_every_process_refusal(tmp_path, base_env):
    out = tmp_path / "full"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    results = finish(job(["train", *SETS, "--quiet", "--out", str(out)], base_env, tmp_path, out, "full"), timeout=120)
    line = f"cartpole-jax: error: --out {out}: directory is not empty (pass --force to overwrite)"
    assert [(code, err.strip().splitlines()) for code, _, err in results] == [(2, [line])] * 2
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_an_unreachable_coordinator_and_a_job_that_never_fills_are_one_line_within_the_timeout(tmp_path, base_env):
    """Process 1 finds nobody at its coordinator address; process 0 (another job, run meanwhile) waits for a
    process 1 that never comes, and jax's runtime aborts it: both are one line, with nothing written."""
    env = {**base_env, "CARTPOLE_JAX_DISTRIBUTED_TIMEOUT": str(SHORT)}
    ports = [free_port(), free_port()]
    argv = lambda i: [sys.executable, "-m", "cartpole_jax", "train", *SETS, "--out", str(tmp_path / f"o{i}"),
                      "--coordinator", f"127.0.0.1:{ports[i]}", "--num-processes", "2", "--process-id", str(i)]
    t0 = time.monotonic()
    procs = [subprocess.Popen(argv(i), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for i in (0, 1)]
    (code0, err0), (code1, err1) = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    assert SHORT <= time.monotonic() - t0 < SHORT + 60  # each waits SHORT seconds, then leaves
    assert code1 == 1 and err1.strip().splitlines() == [
        f"cartpole-jax: error: coordinator 127.0.0.1:{ports[1]} (from flags): no answer after {SHORT} s "
        "(Connection refused); is process 0 running, with the same address?"
    ]
    assert code0 == -signal.SIGABRT and err0.strip().splitlines() == [
        "cartpole-jax: error: process 0 of 2: jax's distributed runtime ended the job (DEADLINE_EXCEEDED: Deadline "
        "Exceeded, in RegisterTask: not every process joined in time); checkpoints already saved are kept"
    ], err0[-2000:]
    assert not (tmp_path / "o0").exists() and not (tmp_path / "o1").exists()


def test_process_0_must_run_the_coordinator_on_its_own_address():
    spec = Spec(f"192.0.2.1:{free_port()}", 2, 0)  # TEST-NET-1: never this machine's
    with pytest.raises(DistributedError, match=r"process 0 runs the coordinator, but 192\.0\.2\.1 is not an address of this"):
        initialize(spec, 2)


@pytest.mark.parametrize("nodelist", ["node001", "node001,gpu7", "node[001-015],gpu7", "node[007,009-015]", "127.0.0.1"])
def test_slurm_settings_match_jax_cluster_detection(monkeypatch, nodelist):
    from jax._src.clusters import SlurmCluster

    env = {"SLURM_JOB_ID": "123456", "SLURM_NTASKS": "4", "SLURM_PROCID": "3", "SLURM_LOCALID": "1", "SLURM_STEP_NODELIST": nodelist}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    want = Spec(SlurmCluster.get_coordinator_address(None, None), SlurmCluster.get_process_count(), SlurmCluster.get_process_id())
    assert SlurmCluster.is_env_present() and slurm(env) == want == parse({}, env)
    assert slurm({**env, "SLURM_NTASKS": "1", "SLURM_PROCID": "0"}) is None  # a batch script's own shell
    assert parse({}, {**env, "JAX_COORDINATOR_PORT": "999"}).coordinator.endswith(":999")
    flags = {"coordinator": "10.0.0.1:1", "num_processes": "2", "process_id": "1"}
    assert parse(flags, env) == Spec("10.0.0.1:1", 2, 1)  # the flags win
