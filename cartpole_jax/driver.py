"""The host loop: compile once, run the chunks for many runs (seeds × grid points) on one or more
devices, report progress and hand the state to checkpoints between chunks.

    >>> from cartpole_jax import Config, train_seeds
    >>> result = train_seeds(Config(total_env_steps=2_000, eval_every=1_000), seeds=range(2))
    >>> result.summary()["num_seeds"], result.metrics.shape
    (2, (2, 2, 6))
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

from .config import Config
from .errors import NonFiniteError
from .program import Program, pick_devices, place, to_host
from .results import Progress, RunResult


def train_runs(
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
    started = time.perf_counter()
    seeds = [int(s) for s in seeds]
    grid = [dict(g) for g in grid] if grid is not None else [{} for _ in seeds]
    program = Program.get(cfg, len(seeds), pick_devices(devices, len(seeds)), batching)
    keys, hps = program.prepare(cfg, seeds, grid)
    compile_seconds = program.compile(keys, hps)
    collect = lambda state, done, seconds, interrupted=False: RunResult.collect(
        state, program, config=cfg, preset=preset, seeds=seeds, grid=grid, compile_seconds=compile_seconds,
        train_seconds=seconds, chunks_done=done, interrupted=interrupted, started=started,
    )

    if resume is None:
        state, start = program.init(keys, hps), 0
    else:
        state, start = place(program.pad(resume[0]), program.runs_sharding), resume[1]
    jax.block_until_ready(state)
    train_seconds, done = 0.0, start
    for c in range(start, cfg.num_chunks):
        t0 = time.perf_counter()
        state = program.chunk(state, hps, c)
        jax.block_until_ready(state)
        train_seconds += time.perf_counter() - t0
        done = c + 1
        nonfinite = to_host(state.nonfinite_step)[: len(seeds)]
        if (nonfinite >= 0).any():
            i = int(np.argmax(nonfinite >= 0))
            raise NonFiniteError(i, seeds[i], int(nonfinite[i]), collect(state, done, train_seconds))
        if progress is not None or jax.process_count() > 1:  # a gather is a collective: every process makes it or none
            metrics = to_host(state.metrics)[: len(seeds)]
            if progress is not None:
                progress(Progress.of(cfg, metrics, done, train_seconds))
        if after_chunk is not None and after_chunk(done, state, program) is False and done < cfg.num_chunks:
            return collect(state, done, train_seconds, interrupted=True)
    return collect(state, done, train_seconds)


def train_seeds(cfg: Config, seeds: Sequence[int] = (0,), **kwargs) -> RunResult:
    """Train independent seeds of one config in one compiled call; see `train_runs` for the options."""
    return train_runs(cfg, seeds, None, **kwargs)
