"""Host-side driver: compile once, run the chunks for many runs (seeds × hyperparameters) on one or
more devices, report progress between chunks, and summarise.

    >>> from cartpole_jax import Config, train_seeds
    >>> result = train_seeds(Config(total_env_steps=2_000, eval_every=1_000), seeds=range(2))
    >>> result.summary()["num_seeds"], result.metrics.shape
    (2, (2, 2, 6))
"""

from __future__ import annotations

import hashlib
import math
import platform
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from . import kernels
from .config import SOLVED_RETURN, Config, ConfigError, HyperParams, apply
from .errors import NonFiniteError
from .train import make_trainer
from .types import METRIC_COLUMNS, RunState


@dataclass
class Progress:
    """What the host knows after each chunk; handed to the progress callback."""

    chunk: int
    num_chunks: int
    env_steps: int  # per run
    total_env_steps: int  # per run
    elapsed: float  # seconds of training, compile excluded
    steps_per_second: float  # all runs together
    train_return: float  # mean over runs of the latest training-episode return
    eval_return: float
    epsilon: float


@dataclass
class RunResult:
    """The outcome of one compiled call over R runs (seeds × grid points)."""

    config: Config
    preset: str
    seeds: list[int]
    grid: list[dict[str, Any]]  # per run, the values that differ from config ({} for plain train)
    metrics: np.ndarray  # (R, num_evals, len(METRIC_COLUMNS))
    params: list[Any]  # per run, the final online parameters (numpy pytrees)
    compile_seconds: float
    train_seconds: float
    num_devices: int
    state: Any = field(repr=False, default=None)  # final batched RunState (device arrays)
    interrupted: bool = False
    chunks_done: int = 0
    batching: str = "map"  # how the runs shared a device: "map" or "vmap"

    def summary(self) -> dict[str, Any]:
        runs = [self._run_summary(i) for i in range(len(self.seeds))]
        steps = self.chunks_done * self.config.chunk_len
        steps = min(steps, self.config.num_vector_steps) * self.config.num_envs
        out = {
            "preset": self.preset,
            "num_seeds": len(set(self.seeds)),
            "num_runs": len(self.seeds),
            "total_env_steps": self.config.num_vector_steps * self.config.num_envs,
            "env_steps_done": steps,
            "compile_seconds": round(self.compile_seconds, 3),
            "train_seconds": round(self.train_seconds, 3),
            "env_steps_per_second": round(steps * len(self.seeds) / max(self.train_seconds, 1e-9), 1),
            "device": device_description(),
            "num_devices": self.num_devices,
            "batching": self.batching,
            "solve_rate": float(np.mean([r["solved"] for r in runs])),
            "runs": runs,
        }
        return out

    def _run_summary(self, i: int) -> dict[str, Any]:
        rows = self.metrics[i]
        written = rows[~np.isnan(rows[:, 1])]
        final = written[-1] if len(written) else np.full(len(METRIC_COLUMNS), np.nan)
        solved_rows = written[written[:, 1] >= SOLVED_RETURN]
        out = {"seed": self.seeds[i]}
        if self.grid[i]:
            out["grid"] = self.grid[i]
        out.update(
            final_eval_return_mean=_num(final[1]),
            final_eval_return_std=_num(final[2]),
            first_solved_env_step=int(solved_rows[0, 0]) if len(solved_rows) else None,
            solved=bool(final[1] >= SOLVED_RETURN),
            params_sha256=params_sha256(self.params[i]),
        )
        return out


def _num(x: float) -> float | None:
    return None if not math.isfinite(float(x)) else round(float(x), 4)


def params_sha256(params) -> str:
    """Hash of the parameters' bytes, leaves in tree order."""
    h = hashlib.sha256()
    for leaf in jax.tree.leaves(params):
        h.update(np.ascontiguousarray(np.asarray(leaf)).tobytes())
    return h.hexdigest()


def device_description() -> str:
    d = jax.devices()[0]
    kind = getattr(d, "device_kind", d.platform)
    cpu = platform.processor() or platform.machine()
    return f"{d.platform}:{kind}" + (f" ({cpu})" if d.platform == "cpu" else "")


def pick_devices(num_devices: int | str | None, num_runs: int | None = None) -> list:
    """The devices to shard runs over: a count, "all", or None for the platform's choice.

    None means one accelerator, or on CPU one device per run up to all CPU devices: runs on CPU are
    single-threaded, so only separate devices put more than one core to work (see `host.use_cpu_cores`).
    """
    available = jax.devices()
    if num_devices is None and available[0].platform == "cpu":
        return available[: max(1, min(len(available), num_runs or len(available)))]
    if num_devices in (None, 1):
        return available[:1]
    if num_devices == "all":
        return available
    if not isinstance(num_devices, int) or num_devices < 1 or num_devices > len(available):
        n = len(available)
        raise ConfigError(f"--devices must be 'all' or an integer in [1, {n}] ({n} device(s) visible); got {num_devices}")
    return available[:num_devices]


def to_host(tree):
    """numpy copies of (possibly sharded) arrays; in a multi-process job every process gathers all shards."""
    if jax.process_count() == 1:
        return jax.device_get(tree)
    from jax.experimental import multihost_utils

    return multihost_utils.process_allgather(tree, tiled=True)


def place(tree, sharding):
    """Put identical host values on every process's devices as one global array per leaf."""
    if jax.process_count() == 1:
        return jax.device_put(tree, sharding)
    return jax.tree.map(lambda x: jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx]), tree)


def batch_hyperparams(cfg: Config, grid: Sequence[dict[str, Any]]) -> HyperParams:
    """One HyperParams with a leading run axis: cfg's values with each run's overrides applied."""
    hps = [apply(cfg, point).hyperparams() for point in grid]
    return jax.tree.map(lambda *xs: np.stack(xs), *hps)


def over_runs(fn, mode: str):
    """fn(state, hp, *shared) for one run, lifted to a leading run axis of state and hp.

    "map" loops over runs with the single-run program, so a run's bits never depend on which runs
    share the call (XLA picks other kernels for batched matmuls); "vmap" batches them, which is
    what accelerators want.
    """
    if mode == "vmap":
        return lambda state, hp, *shared: jax.vmap(lambda s, h: fn(s, h, *shared))(state, hp)
    return lambda state, hp, *shared: jax.lax.map(lambda sh: fn(sh[0], sh[1], *shared), (state, hp))


def batching_mode(mode: str, devices: list) -> str:
    if mode != "auto":
        return mode
    return "map" if devices[0].platform == "cpu" else "vmap"


class Program:
    """The compiled init and chunk functions for R runs sharded over devices; compiled once.

    Use `Program.get`: programs are cached by static config, run count, devices and batching, so
    runs that differ only in vmappable values reuse the compiled code.
    """

    _cache: ClassVar[dict[tuple, Program]] = {}

    @classmethod
    def get(cls, cfg: Config, num_runs: int, devices: list, batching: str = "auto") -> Program:
        key = (cfg.static_key(), num_runs, tuple(d.id for d in devices), batching_mode(batching, devices))
        if key not in cls._cache:
            cls._cache[key] = cls(cfg, num_runs, devices, batching)
        return cls._cache[key]

    def __init__(self, cfg: Config, num_runs: int, devices: list, batching: str = "auto"):
        self.cfg, self.num_runs = cfg, num_runs
        self.devices = devices
        self.batching = batching_mode(batching, devices)
        self.padded = -(-num_runs // len(devices)) * len(devices)
        mesh = Mesh(np.array(devices), ("runs",))
        runs, shared = PartitionSpec("runs"), PartitionSpec()
        self.runs_sharding = NamedSharding(mesh, runs)
        backend = devices[0].platform
        trainer = make_trainer(cfg, thin_as_sums=kernels.thin_as_sums(backend))
        init = over_runs(lambda key, hp: trainer.init(key, hp), self.batching)
        chunk = over_runs(trainer.run_chunk, self.batching)
        options = kernels.jit_options(backend)
        self._init = jax.jit(jax.shard_map(init, mesh=mesh, in_specs=(runs, runs), out_specs=runs, check_vma=False), **options)
        self._chunk = jax.jit(
            jax.shard_map(chunk, mesh=mesh, in_specs=(runs, runs, shared), out_specs=runs, check_vma=False),
            donate_argnums=0,
            **options,
        )
        self.compile_seconds = 0.0
        self.compiled = False

    def pad(self, tree):
        """Repeat run 0 to fill the last device; padded runs are computed and dropped."""
        extra = self.padded - self.num_runs
        if extra == 0:
            return tree
        return jax.tree.map(lambda x: jnp.concatenate([x, jnp.repeat(x[:1], extra, axis=0)]), tree)

    def compile(self, keys, hps) -> float:
        """Compile both functions ahead of time (once); return the seconds this call spent."""
        if self.compiled:
            return 0.0
        t0 = time.perf_counter()
        state_shape = jax.eval_shape(self._init, keys, hps)
        sharded = lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=self.runs_sharding)
        state_shape = jax.tree.map(sharded, state_shape)
        # XLA compiles without the GIL: the small init program builds on another core meanwhile
        with ThreadPoolExecutor(1) as pool:
            init = pool.submit(lambda: self._init.lower(keys, hps).compile())
            self._chunk = self._chunk.lower(state_shape, hps, jnp.int32(0)).compile()
            self._init = init.result()
        self.compile_seconds = time.perf_counter() - t0
        self.compiled = True
        return self.compile_seconds

    def init(self, keys, hps):
        return self._init(keys, hps)

    def chunk(self, state, hps, index: int):
        return self._chunk(state, hps, jnp.int32(index))


def run(
    cfg: Config,
    seeds: Sequence[int],
    grid: Sequence[dict[str, Any]] | None = None,
    *,
    preset: str = "custom",
    devices: int | str | None = None,
    batching: str = "auto",
    progress: Callable[[Progress], None] | None = None,
    resume: tuple[Any, int] | None = None,
    after_chunk: Callable[[int, Any, Program], bool] | None = None,
) -> RunResult:
    """Train run i with seed seeds[i] and the vmappable overrides grid[i], all in one program.

    `resume=(state, chunks_done)` continues a saved batched state; `after_chunk(chunks_done, state,
    program)` runs between chunks (checkpoints, signals) and returns False to stop early.
    """
    seeds = [int(s) for s in seeds]
    grid = [dict(g) for g in grid] if grid is not None else [{} for _ in seeds]
    devs = pick_devices(devices, len(seeds))
    program = Program.get(cfg, len(seeds), devs, batching)
    keys = program.pad(jax.vmap(jax.random.key)(jnp.asarray(seeds, dtype=jnp.uint32)))
    hps = program.pad(jax.tree.map(jnp.asarray, batch_hyperparams(cfg, grid)))
    keys, hps = place((keys, hps), program.runs_sharding)
    compile_seconds = program.compile(keys, hps)

    start = 0
    t0 = time.perf_counter()
    if resume is None:
        state = program.init(keys, hps)
    else:
        state, start = place(program.pad(resume[0]), program.runs_sharding), resume[1]
    jax.block_until_ready(state)
    train_seconds, done, interrupted = 0.0, start, False
    for c in range(start, cfg.num_chunks):
        t0 = time.perf_counter()
        state = program.chunk(state, hps, c)
        jax.block_until_ready(state)
        train_seconds += time.perf_counter() - t0
        done = c + 1
        nonfinite = to_host(state.nonfinite_step)[: len(seeds)]
        if (nonfinite >= 0).any():
            i = int(np.argmax(nonfinite >= 0))
            partial = _result(cfg, preset, seeds, grid, state, compile_seconds, train_seconds, program, False, done)
            raise NonFiniteError(i, seeds[i], int(nonfinite[i]), partial)
        if progress is not None:
            progress(_progress(cfg, state, done, train_seconds, len(seeds)))
        if after_chunk is not None and after_chunk(done, state, program) is False and done < cfg.num_chunks:
            interrupted = True
            break

    return _result(cfg, preset, seeds, grid, state, compile_seconds, train_seconds, program, interrupted, done)


def _result(cfg, preset, seeds, grid, state, compile_seconds, train_seconds, program, interrupted, done) -> RunResult:
    metrics = to_host(state.metrics)[: len(seeds)]
    params = to_host(state.learner.params)
    per_run = [jax.tree.map(lambda x, i=i: x[i], params) for i in range(len(seeds))]
    return RunResult(
        config=cfg, preset=preset, seeds=seeds, grid=grid, metrics=metrics, params=per_run,
        compile_seconds=compile_seconds, train_seconds=train_seconds, num_devices=len(program.devices),
        state=state, interrupted=interrupted, chunks_done=done, batching=program.batching,
    )


def _progress(cfg: Config, state: RunState, chunks_done: int, elapsed: float, num_runs: int) -> Progress:
    steps = min(chunks_done * cfg.chunk_len, cfg.num_vector_steps) * cfg.num_envs
    metrics = to_host(state.metrics)[:num_runs]
    written = ~np.isnan(metrics[:, :, 0])
    latest = metrics[:, written[0].nonzero()[0][-1]] if written.any() else np.full((num_runs, len(METRIC_COLUMNS)), np.nan)
    with np.errstate(all="ignore"):
        return Progress(
            chunk=chunks_done, num_chunks=cfg.num_chunks, env_steps=steps,
            total_env_steps=cfg.num_vector_steps * cfg.num_envs, elapsed=elapsed,
            steps_per_second=steps * num_runs / max(elapsed, 1e-9),
            train_return=float(np.nanmean(latest[:, 3])) if written.any() else float("nan"),
            eval_return=float(np.nanmean(latest[:, 1])) if written.any() else float("nan"),
            epsilon=float(np.nanmean(latest[:, 5])) if written.any() else float("nan"),
        )


def train_seeds(cfg: Config, seeds: Sequence[int] = (0,), **kwargs) -> RunResult:
    """Train independent seeds of one config in one compiled call; see `run` for the options."""
    return run(cfg, seeds, None, **kwargs)
