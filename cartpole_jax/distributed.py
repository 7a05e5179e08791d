"""Multi-host setup: call `jax.distributed.initialize()` when flags or env vars ask for it.

Flags (`--coordinator`, `--num-processes`, `--process-id`) win over the env vars
JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID; with neither, nothing happens and
the run is single-process. See docs/multihost.md.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass

from .config import ConfigError

ENV_VARS = {"coordinator": "JAX_COORDINATOR_ADDRESS", "num_processes": "JAX_NUM_PROCESSES", "process_id": "JAX_PROCESS_ID"}
FLAGS = {"coordinator": "--coordinator", "num_processes": "--num-processes", "process_id": "--process-id"}


@dataclass(frozen=True)
class Spec:
    """Where the coordinator listens, how many processes join, and which one this is."""

    coordinator: str
    num_processes: int
    process_id: int


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
        return None
    missing = [f"{FLAGS[n]} (or {ENV_VARS[n]})" for n in ENV_VARS if n not in raw]
    if missing:
        given = ", ".join(source[n] for n in raw)
        raise ConfigError(f"multi-host setup needs all three settings: {given} given, missing {', '.join(missing)}")
    num = _integer(raw["num_processes"], source["num_processes"], 1)
    pid = _integer(raw["process_id"], source["process_id"], 0)
    if pid >= num:
        raise ConfigError(f"{source['process_id']} must be in [0, {num - 1}] for {num} process(es); got {pid}")
    return Spec(_address(raw["coordinator"], source["coordinator"]), num, pid)


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


def initialize(spec: Spec | None) -> None:
    """Join the job described by spec (no-op for None). Must run before jax touches a device."""
    if spec is None:
        return
    import jax

    jax.distributed.initialize(coordinator_address=spec.coordinator, num_processes=spec.num_processes, process_id=spec.process_id)


def setup(args, environ: Mapping[str, str] | None = None) -> Spec | None:
    """parse + initialize from a command's parsed args; the one call a command makes first."""
    flags = {name: getattr(args, name, None) for name in ENV_VARS}
    spec = parse(flags, os.environ if environ is None else environ)
    initialize(spec)
    return spec


def is_writer() -> bool:
    """Only process 0 writes the run directory, so processes never race on the same files."""
    import jax

    return jax.process_index() == 0
