"""Sharding runs over devices (4 virtual CPU devices, in a subprocess since XLA reads its flags at
start-up) and the multi-host settings."""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from cartpole_jax.config import ConfigError
from cartpole_jax.distributed import Spec, parse

SCRIPT = textwrap.dedent(
    """
    import io, json, sys, contextlib
    import jax
    from cartpole_jax.cli import main
    from cartpole_jax.config import Config
    from cartpole_jax.sweep import parse_grid, run_sweep

    TINY = dict(total_env_steps=1200, num_envs=2, buffer_size=500, batch_size=32, learning_starts=200,
                hidden_sizes=(16, 16), eval_every=400, eval_episodes=4, num_chunks=3)
    sets = [a for k, v in TINY.items() for a in ("--set", f"{k}={list(v) if isinstance(v, tuple) else v}")]
    lrs = ["1e-3", "2e-3", "3e-3", "4e-3", "5e-3"]
    grid3 = parse_grid(["learning_rate=" + ",".join(lrs[:3])])
    hashes = lambda s: [r["params_sha256"] for r in s["runs"]]
    one = run_sweep(Config(**TINY), grid3, [7], devices=1).summary()
    four = run_sweep(Config(**TINY), grid3, [7], devices=4).summary()  # 3 runs padded to 4
    out = sys.argv[1]
    # 5 runs padded to 8: two runs per device, through the CLI
    cli = main(["sweep", *sets, "--grid", "learning_rate=" + ",".join(lrs), "--seed", "7", "--devices", "all", "--out", out, "--quiet"])
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        too_many = main(["sweep", *sets, "--grid", "gamma=0.9,0.99", "--devices", "8", "--out", out + "-x", "--quiet"])
    five = json.load(open(out + "/summary.json"))
    print(json.dumps(dict(devices=len(jax.devices()), one=hashes(one), four=hashes(four), five=hashes(five),
                          nd=[one["num_devices"], four["num_devices"], five["num_devices"]], cli=cli,
                          too_many=too_many, too_many_err=err.getvalue())))
    """
)


def test_four_virtual_devices_match_one_device(tmp_path):
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "five")], capture_output=True, text=True, env=env, timeout=580)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["devices"] == 4 and r["cli"] == 0
    assert r["nd"] == [1, 4, 4]
    assert len(set(r["one"])) == 3
    assert r["four"] == r["one"]  # one run per device (plus a padded copy): same bits as one device
    assert r["five"][:3] == r["one"]  # two runs per device, padded to 8: still the same bits
    assert r["too_many"] == 2 and "in [1, 4]" in r["too_many_err"] and not (tmp_path / "five-x").exists()


def test_multihost_settings_absent_means_single_process():
    assert parse({}, {}) is None
    assert parse({"coordinator": None}, {"JAX_COORDINATOR_ADDRESS": " "}) is None


def test_multihost_flags_override_env():
    env = {"JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234", "JAX_NUM_PROCESSES": "4", "JAX_PROCESS_ID": "3"}
    assert parse({}, env) == Spec("10.0.0.1:1234", 4, 3)
    assert parse({"process_id": "1", "coordinator": "127.0.0.1:999"}, env) == Spec("127.0.0.1:999", 4, 1)
    assert parse({"coordinator": "[::1]:8476", "num_processes": "2", "process_id": "0"}, {}) == Spec("[::1]:8476", 2, 0)


@pytest.mark.parametrize(
    ("flags", "env", "needle"),
    [
        ({"coordinator": "localhost:1234"}, {}, "missing --num-processes (or JAX_NUM_PROCESSES), --process-id"),
        ({}, {"JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "0"}, "missing --coordinator (or JAX_COORDINATOR_ADDRESS)"),
        ({"coordinator": "localhost", "num_processes": "2", "process_id": "0"}, {}, "--coordinator must be HOST:PORT"),
        ({"coordinator": "localhost:99999", "num_processes": "2", "process_id": "0"}, {}, "port in [1, 65535]"),
        ({"coordinator": "localhost:1234", "num_processes": "two", "process_id": "0"}, {}, "--num-processes must be an integer >= 1"),
        ({"coordinator": "localhost:1234", "num_processes": "0", "process_id": "0"}, {}, "--num-processes must be an integer >= 1"),
        ({"coordinator": "localhost:1234", "num_processes": "2", "process_id": "2"}, {}, "--process-id must be in [0, 1]"),
        ({}, {"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "-1"}, "JAX_PROCESS_ID must be an integer"),
    ],
)
def test_multihost_settings_errors(flags, env, needle):
    with pytest.raises(ConfigError) as err:
        parse(flags, env)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_multihost_error_on_the_command_line(tmp_path):
    argv = [sys.executable, "-m", "cartpole_jax", "sweep", "--grid", "gamma=0.9,0.99", "--coordinator", "127.0.0.1:1",
            "--out", str(tmp_path / "o")]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "cartpole-jax: error: multi-host setup needs all three settings: --coordinator given, "
        "missing --num-processes (or JAX_NUM_PROCESSES), --process-id (or JAX_PROCESS_ID)"
    ]


CORES_SCRIPT = textwrap.dedent(
    """
    import json, os
    import jax
    from cartpole_jax.host import use_cpu_cores

    first = use_cpu_cores()  # before anything that may touch jax (importing the trainer can)
    from cartpole_jax.program import pick_devices
    jax.numpy.zeros(1).block_until_ready()  # the backend now exists: a second call must leave it alone
    print(json.dumps(dict(first=first, second=use_cpu_cores(), cores=len(os.sched_getaffinity(0)),
                          devices=len(jax.devices()), one=len(pick_devices(None, 1)), many=len(pick_devices(None, 10**6)),
                          explicit=len(pick_devices(1, 10**6)))))
    """
)


def test_cli_gives_each_cpu_core_a_device_and_auto_picks_at_most_one_per_run():
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES")}
    env["JAX_PLATFORMS"] = "cpu"
    proc = subprocess.run([sys.executable, "-c", CORES_SCRIPT], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["first"] == r["cores"] == r["devices"] == r["many"] and r["second"] is None
    assert r["one"] == 1 and r["explicit"] == 1


def test_a_users_device_count_is_respected():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=3", "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", CORES_SCRIPT], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["first"] is None and r["devices"] == r["many"] == 3 and r["one"] == 1


def test_the_cli_keeps_compiled_programs_in_its_cache_folder(tmp_path):
    sets = ["total_env_steps=400", "num_envs=2", "buffer_size=200", "batch_size=16", "learning_starts=100",
            "hidden_sizes=[8]", "eval_every=200", "eval_episodes=2", "num_chunks=1"]
    argv = [sys.executable, "-m", "cartpole_jax", "train", "--quiet", *[a for s in sets for a in ("--set", s)]]
    for name, cache in (("on", str(tmp_path / "cache")), ("off", "off")):
        home = tmp_path / "home"  # where the default folder would be
        env = {**os.environ, "CARTPOLE_JAX_CACHE": cache, "JAX_PLATFORMS": "cpu", "HOME": str(home), "XDG_CACHE_HOME": str(home)}
        env.pop("JAX_COMPILATION_CACHE_DIR", None)
        proc = subprocess.run([*argv, "--out", str(tmp_path / name)], capture_output=True, text=True, env=env, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
    assert any((tmp_path / "cache").iterdir())  # "on" wrote compiled programs there: jax's entries,
    programs = tmp_path / "cache" / "programs"  # and the executables that skip tracing (executables.py)
    assert sorted(p.suffix for p in programs.iterdir()) == [".chunk", ".init"]
    assert not (tmp_path / "home" / "cartpole-jax").exists()  # and "off" wrote none anywhere
    # Without its executables the program comes from jax's cache, and such an executable is not kept:
    # serialised again it would lack its kernels. The run still succeeds.
    shutil.rmtree(programs)
    env = {**env, "CARTPOLE_JAX_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run([*argv, "--out", str(tmp_path / "again")], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0 and not programs.exists(), proc.stderr[-3000:]
