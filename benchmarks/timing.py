"""Timing helpers shared by the benchmarks: repeats, records, a time budget, machine facts."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from typing import Any


def seconds(fn: Callable[[], Any]) -> float:
    """Wall-clock seconds of one call; fn must block until its work is done."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def calls_for(seconds_per_call: float, target_seconds: float, most: int = 1 << 20) -> int:
    """How many calls fill about target_seconds, given one call's measured time."""
    return int(min(most, max(1, round(target_seconds / max(seconds_per_call, 1e-9)))))


def record(kind: str, impl: str, steps: int, times: list[float], **fields: Any) -> dict[str, Any]:
    """A throughput record: median, min and max steps/s over the repeats' wall times."""
    rates = sorted(steps / t for t in times)
    out = {
        "kind": kind, "impl": impl, "preset": None, "num_envs": None, "num_seeds": None,
        "steps_per_second": statistics.median(rates), "compile_seconds": None,
        "min": rates[0], "max": rates[-1], "repeats": len(times), "steps_per_repeat": steps,
        "repeat_seconds": [round(t, 6) for t in times],
    }
    out.update(fields)
    return out


class Budget:
    """A wall-clock deadline, so a run stops adding sizes instead of overrunning its time."""

    def __init__(self, seconds_total: float):
        self.start = time.perf_counter()
        self.deadline = self.start + seconds_total

    def left(self) -> float:
        return self.deadline - time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def share(self, fraction: float) -> Budget:
        """A sub-budget: `fraction` of what is left now."""
        return Budget(max(self.left(), 0.0) * fraction)

    def allows(self, predicted: float) -> bool:
        return predicted < self.left()


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (platform's guess elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions() -> dict[str, str | None]:
    out = {}
    for name in ("jax", "jaxlib", "gymnax", "gymnasium", "flax", "optax", "numpy"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def commit(checkout: str | os.PathLike | None = None) -> str | None:
    """The git commit of this checkout (or of another one); CARTPOLE_JAX_COMMIT names this one where
    the tree travelled without .git."""
    if checkout is None and os.environ.get("CARTPOLE_JAX_COMMIT"):
        return os.environ["CARTPOLE_JAX_COMMIT"]
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                             cwd=checkout or os.path.dirname(os.path.abspath(__file__)))
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def machine() -> dict[str, Any]:
    """Device kind and count, CPU model and cores, library versions."""
    import jax

    devices = jax.devices()
    return {
        "backend": jax.default_backend(),
        "device_kind": devices[0].device_kind,
        "device_count": len(devices),
        "cpu_model": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "cpu_cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "python": platform.python_version(),
        "versions": versions(),
        "commit": commit(),
    }
