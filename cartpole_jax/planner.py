"""Memory planner: bytes per run from `jax.eval_shape` of the trainer's init, the compiled program's
own `memory_analysis()`, and how many runs fit each device.

    >>> from cartpole_jax.config import Config
    >>> from cartpole_jax.planner import state_breakdown
    >>> state_breakdown(Config(buffer_size=1_000))["replay buffer"]  # 1000 × 42 bytes, + position and size
    42008
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

import jax
import numpy as np

from .config import Config, ConfigError
from .core.train import state_shapes
from .program import Program, batching_mode, pick_devices, runs_per_device

CATEGORIES = ("replay buffer", "params", "target params", "optimizer state", "env states", "metrics", "other")
HEADROOM = 0.9  # plan to use at most this fraction of a device's memory: allocators fragment


def nbytes(tree: Any) -> int:
    """Bytes of every array (or ShapeDtypeStruct) leaf; typed PRNG keys count their key data."""
    total = 0
    for x in jax.tree.leaves(tree):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x = jax.eval_shape(jax.random.key_data, x)
        total += math.prod(x.shape) * np.dtype(x.dtype).itemsize
    return total


def state_breakdown(cfg: Config) -> dict[str, int]:
    """One run's RunState bytes by category, from shapes alone (nothing is allocated or compiled)."""
    s = state_shapes(cfg)
    parts = {
        "replay buffer": nbytes(s.buffer),
        "params": nbytes(s.learner.params),
        "target params": nbytes(s.learner.target_params),
        "optimizer state": nbytes(s.learner.opt_state),
        "env states": nbytes((s.env_state, s.obs)),
        "metrics": nbytes(s.metrics),
    }
    parts["other"] = nbytes(s) - sum(parts.values())  # rng key, episode accumulators, non-finite flag
    return parts


def input_bytes(cfg: Config) -> int:
    """Per-run inputs besides the state: the seed's key and the vmappable hyperparameters."""
    return nbytes(jax.random.key(0)) + nbytes(cfg.hyperparams())


def working_bytes(cfg: Config, param_bytes: int) -> int:
    """Scratch of one vector step: activations and gradients of the three batched forward passes
    (online on obs and next_obs, target on next_obs) and the sampled n-step sequences, per sample;
    gradients and optimiser updates, per parameter (`param_bytes`: state_breakdown's "params").
    Fitted to the compiled temp of 7 configs (batch 32-128, hidden 16-256 wide, n_step 1-5) in both
    loops, within ~20%; the state, the replay buffer above all, is most of a real config's peak."""
    return cfg.batch_size * (16 * sum(cfg.hidden_sizes) + 40 + 3 * (cfg.n_step - 1)) + round(0.825 * param_bytes)


def estimate_peak(cfg: Config, runs_per_device: int, batching: str = "map", breakdown: dict[str, int] | None = None) -> int:
    """Bytes one device needs for a chunk with this many runs, from shapes only."""
    parts = breakdown or state_breakdown(cfg)
    return peak_bytes(sum(parts.values()), input_bytes(cfg), working_bytes(cfg, parts["params"]), runs_per_device, batching)


def peak_bytes(state: int, inputs: int, work: int, r: int, batching: str) -> int:
    """The donated state is updated in place (its output aliases its input). "map" works on one run
    at a time, whose state is copied out and written back (`over_runs`' in_place); "vmap" works on
    all runs at once."""
    resident = r * (state + inputs)
    if batching == "vmap":
        return resident + r * work
    return resident + (state if r > 1 else 0) + work


def device_capacity(devices: list) -> tuple[int, str]:
    """Usable bytes per device: the allocator's limit, or host RAM shared by the CPU devices."""
    stats = _memory_stats(devices[0])
    if stats and stats.get("bytes_limit"):
        return int(stats["bytes_limit"]), "device memory (memory_stats bytes_limit)"
    ram = _host_ram()
    # Virtual CPU devices share one host's RAM, so each gets its share.
    return ram // len(devices), f"host RAM {_fmt(ram)} shared by {len(devices)} device(s)"


def _memory_stats(device) -> dict | None:
    try:
        return device.memory_stats()
    except (AttributeError, NotImplementedError, RuntimeError):
        return None


def _host_ram() -> int:
    """Available RAM (MemAvailable counts reclaimable cache); total physical RAM where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def max_runs_per_device(cfg: Config, capacity: int, batching: str = "map", breakdown: dict[str, int] | None = None) -> int:
    """The most runs one device fits within HEADROOM of its capacity (0 if not even one)."""
    parts = breakdown or state_breakdown(cfg)
    state, inputs, work = sum(parts.values()), input_bytes(cfg), working_bytes(cfg, parts["params"])
    peak = lambda r: peak_bytes(state, inputs, work, r, batching)
    budget, lo, hi = capacity * HEADROOM, 0, 1
    while peak(hi) <= budget and hi < 1 << 40:
        lo, hi = hi, hi * 2
    while hi - lo > 1:  # largest r in [lo, hi) that fits; peak grows with r
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if peak(mid) <= budget else (lo, mid)
    return lo


@dataclass
class Plan:
    """The memory plan of one compiled program: R runs of one static config over D devices."""

    config: Config
    num_runs: int
    num_devices: int
    batching: str
    breakdown: dict[str, int]
    runs_per_device: int
    estimate: int  # per device, bytes, from shapes
    capacity: int
    capacity_source: str
    max_runs_per_device: int
    compiled: dict[str, int] | bool | None = field(default=None)  # False: not compiled

    @property
    def fits(self) -> bool:
        return self.estimate <= self.capacity * HEADROOM


def make_plan(cfg: Config, num_runs: int, devices: list, batching: str = "auto") -> Plan:
    """Plan from shapes only; `attach_compiled` adds the compiled program's own numbers."""
    mode = batching_mode(batching, devices)
    per_dev = runs_per_device(num_runs, len(devices), mode)
    capacity, source = device_capacity(devices)
    parts = state_breakdown(cfg)
    return Plan(
        cfg, num_runs, len(devices), mode, parts, per_dev, estimate_peak(cfg, per_dev, mode, parts),
        capacity, source, max_runs_per_device(cfg, capacity, mode, parts),
    )


def attach_compiled(plan: Plan, devices: list) -> Plan:
    """Compile the real program (program.Program, cached for a later run) and record its memory analysis."""
    program = Program.get(plan.config, plan.num_runs, devices, plan.batching)
    program.compile(*program.prepare(plan.config, range(plan.num_runs), [{}] * plan.num_runs))
    plan.compiled = program.memory_analysis()
    return plan


def check_fit(plans: list[Plan]) -> None:
    """Raise ConfigError, with the planner's numbers, if any program would not fit its devices."""
    for p in plans:
        if not p.fits:
            need = _fmt(p.estimate)
            per_run = _fmt(sum(p.breakdown.values()))
            raise ConfigError(
                f"{p.num_runs} runs will not fit: {p.runs_per_device} run(s) per device need ~{need} "
                f"({per_run} state per run, {_fmt(p.breakdown['replay buffer'])} of it replay buffer) but a device has "
                f"{_fmt(p.capacity)} ({p.capacity_source}); at most {p.max_runs_per_device} run(s) per device fit "
                f"(lower buffer_size, the number of seeds or grid points, or use more devices)"
            )


def _fmt(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return f"{n:.2f} TiB"


def format_plan(plan: Plan, label: str = "") -> str:
    """The plan as an aligned text report."""
    lines = [f"program{(' ' + label) if label else ''}: {plan.num_runs} run(s) on {plan.num_devices} device(s), "
             f"{plan.runs_per_device} per device, batching={plan.batching}"]
    lines.append("  per run (jax.eval_shape of the trainer's init):")
    for name in CATEGORIES:
        lines.append(f"    {name:<18}{_fmt(plan.breakdown[name]):>14}")
    state = sum(plan.breakdown.values())
    lines.append(f"    {'state total':<18}{_fmt(state):>14}")
    work = working_bytes(plan.config, plan.breakdown["params"])
    lines.append(f"    {'step scratch':<18}{_fmt(work):>14}  (estimated from batch_size, hidden_sizes, n_step)")
    lines.append(f"  estimated peak per device: {_fmt(plan.estimate)}")
    if plan.compiled:
        c = plan.compiled
        diff = (plan.estimate - c["peak"]) / max(c["peak"], 1)
        lines.append(
            f"  compiled program (memory_analysis, per device): arguments {_fmt(c['arguments'])}, outputs {_fmt(c['outputs'])} "
            f"({_fmt(c['aliased'])} aliased to arguments), temp {_fmt(c['temp'])}; peak {_fmt(c['peak'])} (estimate {diff:+.1%})"
        )
    elif plan.compiled is False:
        lines.append("  compiled program: not compiled (it does not fit, or compiling was skipped)")
    else:
        lines.append("  compiled program: this backend reports no memory analysis")
    verdict = "fits" if plan.fits else "DOES NOT FIT"
    lines.append(
        f"  device capacity: {_fmt(plan.capacity)} ({plan.capacity_source}); at most {plan.max_runs_per_device} run(s) per device, "
        f"{plan.max_runs_per_device * plan.num_devices} on {plan.num_devices} device(s) — {verdict}"
    )
    return "\n".join(lines)


def require_fit(cfg: Config, num_runs: int, devices: int | str | None = None, batching: str = "auto") -> Plan:
    """The one call train makes before writing anything: plan from shapes, refuse if it won't fit."""
    plan = make_plan(cfg, num_runs, pick_devices(devices, num_runs), batching)
    check_fit([plan])
    return plan
