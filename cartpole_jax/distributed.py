"""Multi-host setup: call `jax.distributed.initialize()` when flags, env vars or SLURM ask for it.

Flags (`--coordinator`, `--num-processes`, `--process-id`) win over the env vars
JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID, which win over a SLURM step of more
than one task (`srun`); with none of them the run is single-process. Process 0 alone owns the run
directory: `on_writer` runs its checks and writes there and hands every process its outcome. A job
that breaks (a peer gone, no coordinator) is one `DistributedError` line. See docs/multihost.md.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from itertools import count

from .config import ConfigError
from .errors import CheckpointError, DistributedError, PolicyError, UsageError

ENV_VARS = {"coordinator": "JAX_COORDINATOR_ADDRESS", "num_processes": "JAX_NUM_PROCESSES", "process_id": "JAX_PROCESS_ID"}
FLAGS = {"coordinator": "--coordinator", "num_processes": "--num-processes", "process_id": "--process-id"}


@dataclass(frozen=True)
class Spec:
    """Where the coordinator listens, how many processes join, and which one this is."""

    coordinator: str
    num_processes: int
    process_id: int
    source: str = field(default="flags", compare=False)  # where it came from, for messages: flags, env, slurm


# Seconds; CARTPOLE_JAX_DISTRIBUTED_TIMEOUT overrides. Joining waits at most TIMEOUT for every process,
# a process silent for TIMEOUT / 2 is declared dead (jax then ends the others), and a finished process
# waits at most TIMEOUT / 2 for the others at the exit barrier.
TIMEOUT = 60
TIMEOUT_ENV = "CARTPOLE_JAX_DISTRIBUTED_TIMEOUT"


def add_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("multi-host (see docs/multihost.md)")
    g.add_argument("--coordinator", metavar="HOST:PORT", default=None, help=f"coordinator address (env {ENV_VARS['coordinator']})")
    g.add_argument("--num-processes", metavar="N", default=None, help=f"processes in the job (env {ENV_VARS['num_processes']})")
    g.add_argument("--process-id", metavar="I", default=None, help=f"this process's index, 0..N-1 (env {ENV_VARS['process_id']})")


def parse(flags: Mapping[str, str | None], environ: Mapping[str, str]) -> Spec | None:
    """The multi-host spec from flag values (None if not given) over env vars; None means single-process."""
    raw, source = {}, {}
    for name, var in ENV_VARS.items():
        if flags.get(name) is not None:
            raw[name], source[name] = str(flags[name]), FLAGS[name]
        elif environ.get(var, "").strip():
            raw[name], source[name] = environ[var].strip(), var
    if not raw:
        return slurm(environ)
    missing = [f"{FLAGS[n]} (or {ENV_VARS[n]})" for n in ENV_VARS if n not in raw]
    if missing:
        given = ", ".join(source[n] for n in raw)
        raise ConfigError(f"multi-host setup needs all three settings: {given} given, missing {', '.join(missing)}")
    num = _integer(raw["num_processes"], source["num_processes"], 1)
    pid = _integer(raw["process_id"], source["process_id"], 0)
    if pid >= num:
        raise ConfigError(f"{source['process_id']} must be in [0, {num - 1}] for {num} process(es); got {pid}")
    origin = "flags" if any(v.startswith("--") for v in source.values()) else "env"
    return Spec(_address(raw["coordinator"], source["coordinator"]), num, pid, origin)


def slurm(environ: Mapping[str, str]) -> Spec | None:
    """The spec of a SLURM step of several tasks (`srun`), as jax's SlurmCluster reads it; else None.

    Coordinator: the step's first node, port $JAX_COORDINATOR_PORT or 61440 + job id mod 4096.
    A batch script's own shell (one task) stays single-process.
    """
    names = ("SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_LOCALID")
    if not all(environ.get(n, "").strip() for n in names):
        return None
    try:
        num, pid, job = int(environ["SLURM_NTASKS"]), int(environ["SLURM_PROCID"]), int(environ["SLURM_JOB_ID"])
    except ValueError:
        raise ConfigError("SLURM_NTASKS, SLURM_PROCID and SLURM_JOB_ID must be integers; "
                          f"got {environ['SLURM_NTASKS']!r}, {environ['SLURM_PROCID']!r}, {environ['SLURM_JOB_ID']!r}") from None
    if num < 2:
        return None
    if not 0 <= pid < num:
        raise ConfigError(f"SLURM_PROCID must be in [0, {num - 1}] for SLURM_NTASKS={num}; got {pid}")
    port = environ.get("JAX_COORDINATOR_PORT", "").strip() or str(61440 + job % 4096)
    return Spec(_address(f"{_first_node(environ['SLURM_STEP_NODELIST'])}:{port}", "JAX_COORDINATOR_PORT"), num, pid, "slurm")


def _first_node(nodelist: str) -> str:
    """'node[001-004],gpu7' -> 'node001': the first host of a SLURM node list (jax's SlurmCluster rule)."""
    cut = next((i for i, ch in enumerate(nodelist) if ch in ",["), len(nodelist))
    if cut == len(nodelist) or nodelist[cut] == ",":
        return nodelist[:cut]
    rest = nodelist[cut + 1:]
    end = next((i for i, ch in enumerate(rest) if ch in ",-"), None)
    return nodelist[:cut] + rest[:end]


def _integer(text: str, source: str, lo: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"{source} must be an integer >= {lo}; got {text!r}") from None
    if value < lo:
        raise ConfigError(f"{source} must be an integer >= {lo}; got {text!r}")
    return value


def _address(text: str, source: str) -> str:
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")  # [::1]:1234
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ConfigError(f"{source} must be HOST:PORT with a port in [1, 65535]; got {text!r}")
    return text


def timeout(environ: Mapping[str, str]) -> int:
    """TIMEOUT, or CARTPOLE_JAX_DISTRIBUTED_TIMEOUT (whole seconds >= 2)."""
    text = environ.get(TIMEOUT_ENV, "").strip()
    return _integer(text, TIMEOUT_ENV, 2) if text else TIMEOUT


def initialize(spec: Spec | None, seconds: int = TIMEOUT) -> None:
    """Join the job described by spec (no-op for None). Must run before jax touches a device.

    jax's runtime ends the process itself when a join or a heartbeat times out, so what can be found
    out first is checked here and reported as one line; `runtime_log` turns the rest into one line.
    """
    if spec is None:
        return
    import jax

    from . import runtime_log

    _check_coordinator(spec, seconds)
    runtime_log.route(spec.process_id, spec.num_processes)
    jax.distributed.initialize(
        coordinator_address=spec.coordinator, num_processes=spec.num_processes, process_id=spec.process_id,
        initialization_timeout=seconds, heartbeat_timeout_seconds=max(1, seconds // 2),
        shutdown_timeout_seconds=max(1, seconds // 2),
    )


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def _check_coordinator(spec: Spec, seconds: int) -> None:
    """Process 0: the address is this machine's and its port is free. Others: it accepts connections within `seconds`."""
    host, port = _split(spec.coordinator)
    where = f"coordinator {spec.coordinator} (from {spec.source})"
    if spec.process_id == 0:
        try:
            with socket.socket(_family(host)) as s:
                s.bind((host, 0))
        except OSError as err:
            raise DistributedError(f"{where}: process 0 runs the coordinator, but {host} is not an address of "
                                   f"this machine ({err.strerror or err})") from None
        try:
            with socket.socket(_family(host)) as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the coordinator binds: a closed port is free
                s.bind(("", port))
        except OSError as err:
            raise DistributedError(f"{where}: port {port} is not free on process 0's machine ({err.strerror or err})") from None
        return
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection((host, port), timeout=2).close()
            return
        except OSError as err:
            if time.monotonic() >= deadline:
                raise DistributedError(f"{where}: no answer after {seconds} s ({err.strerror or err}); is process 0 "
                                       "running, with the same address?") from None
            time.sleep(0.5)


def _family(host: str) -> int:
    try:
        return socket.getaddrinfo(host, None)[0][0]
    except OSError:
        return socket.AF_INET  # the bind then fails with the resolver's message


def setup(args, environ: Mapping[str, str] | None = None) -> Spec | None:
    """parse + initialize from a command's parsed args; the one call a command makes first."""
    flags = {name: getattr(args, name, None) for name in ENV_VARS}
    environ = os.environ if environ is None else environ
    spec = parse(flags, environ)
    initialize(spec, timeout(environ))
    return spec


def is_writer() -> bool:
    """Only process 0 writes the run directory, so processes never race on the same files."""
    import jax

    return jax.process_index() == 0


def is_multiprocess() -> bool:
    import jax

    return jax.process_count() > 1


# Library errors process 0 hands to the others, by name; anything else arrives as a DistributedError.
_SHARED = {cls.__name__: cls for cls in (UsageError, ConfigError, CheckpointError, PolicyError)}
_keys = count()


def on_writer(fn: Callable, *args, wait: float = 600.0):
    """fn(*args) on process 0 only; every process returns its JSON-able result or raises its error.

    The one place where process 0 checks, creates and locks the run directory: the others wait for
    its verdict (at most `wait` seconds) instead of racing it or running into a collective alone.
    """
    if not is_multiprocess():
        return fn(*args)
    from jax._src import distributed as state  # the coordinator's key-value store: no device collective

    client, key = state.global_state.client, f"cartpole-jax/on_writer/{next(_keys)}"
    if is_writer():
        try:
            value = fn(*args)
        except Exception as err:
            message, param = (err.message, err.param) if isinstance(err, UsageError) else (str(err), None)
            client.key_value_set(key, json.dumps({"error": type(err).__name__, "message": message, "param": param}))
            raise
        client.key_value_set(key, json.dumps({"value": value}))
        return value
    reply = json.loads(client.blocking_key_value_get(key, int(wait * 1000)))
    if "error" in reply:
        cls = _SHARED.get(reply["error"], DistributedError)
        raise cls(reply["message"], reply["param"]) if issubclass(cls, UsageError) else cls(reply["message"])
    return reply["value"]


def anyone(flag: bool) -> bool:
    """Whether `flag` is true on any process (a collective: every process must call it at the same point)."""
    if not is_multiprocess():
        return flag
    import numpy as np
    from jax.experimental import multihost_utils

    return bool(np.any(multihost_utils.process_allgather(np.array([flag]))))


# Words in the errors of jax's distributed runtime and of gloo, the CPU collectives, when a peer is gone.
_BROKEN = ("Gloo", "gloo", "CoordinationService", "coordination service", "DEADLINE_EXCEEDED", "UNAVAILABLE",
           "Connection reset by peer", "Connection closed by peer", "heartbeat")


def broken(err: BaseException) -> DistributedError | None:
    """The one-line DistributedError for an error that means the multi-process job broke, else None."""
    if isinstance(err, DistributedError):
        return err
    if not isinstance(err, (RuntimeError, ValueError)) or not _initialized():
        return None
    text = str(err)
    if not any(word in text for word in _BROKEN):
        return None
    import jax

    first = (text.strip().splitlines() or [""])[0]
    return DistributedError(f"process {jax.process_index()} of {jax.process_count()}: the multi-process job broke, "
                            f"another process has probably stopped ({type(err).__name__}: {first[:160]}); "
                            "checkpoints already saved are kept")


def _initialized() -> bool:
    import jax

    return jax.distributed.is_initialized()


def leave(code: int) -> None:
    """Exit at once with `code`, skipping jax's exit barrier, which in a broken job waits and then aborts."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
