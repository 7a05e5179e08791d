"""What a compiled call over R runs produced: the result object, its summary, and progress between
chunks. Metrics rows are read by column name (`core.types.METRIC`)."""

from __future__ import annotations

import hashlib
import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import jax
import numpy as np

from .config import SOLVED_RETURN, Config
from .core.types import METRIC, METRIC_COLUMNS
from .program import device_description, to_host
from .stats import run_statistics

STEP, EVAL, EVAL_STD = METRIC["env_step"], METRIC["eval_return_mean"], METRIC["eval_return_std"]
TRAIN, EPSILON = METRIC["train_return_mean"], METRIC["epsilon"]


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
    metrics: np.ndarray | None = field(default=None, repr=False)  # the host copy it came from, for loggers (tracking.py)

    @classmethod
    def of(cls, cfg: Config, metrics: np.ndarray, chunks_done: int, elapsed: float) -> Progress:
        """From the host copy of the runs' metrics (runs, evals, columns) after `chunks_done` chunks."""
        steps = env_steps_done(cfg, chunks_done)
        written = ~np.isnan(metrics[:, :, STEP])
        nan = float("nan")
        latest = metrics[:, written[0].nonzero()[0][-1]] if written.any() else None
        mean = lambda col: nan if latest is None else float(np.nanmean(latest[:, col]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # the mean of a column of NaNs is NaN, as wanted
            return cls(
                chunk=chunks_done, num_chunks=cfg.num_chunks, env_steps=steps,
                total_env_steps=cfg.num_vector_steps * cfg.num_envs, elapsed=elapsed,
                steps_per_second=steps * len(metrics) / max(elapsed, 1e-9),
                train_return=mean(TRAIN), eval_return=mean(EVAL), epsilon=mean(EPSILON), metrics=metrics,
            )


def env_steps_done(cfg: Config, chunks_done: int) -> int:
    """Env steps each run has taken after `chunks_done` chunks."""
    return min(chunks_done * cfg.chunk_len, cfg.num_vector_steps) * cfg.num_envs


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
    started: float = 0.0  # perf_counter when the call began, before compiling

    @classmethod
    def collect(cls, state, program, *, config: Config, preset: str, seeds: list[int], grid: list[dict[str, Any]], compile_seconds: float,
                train_seconds: float, chunks_done: int, interrupted: bool = False, started: float = 0.0) -> RunResult:
        """Gather a batched state's metrics and parameters to the host (dropping padded runs)."""
        metrics = to_host(state.metrics)[: len(seeds)]
        params = to_host(state.learner.params)
        per_run = [jax.tree.map(lambda x, i=i: x[i], params) for i in range(len(seeds))]
        return cls(
            config=config, preset=preset, seeds=seeds, grid=grid, metrics=metrics, params=per_run,
            compile_seconds=compile_seconds, train_seconds=train_seconds, num_devices=len(program.devices),
            state=state, interrupted=interrupted, chunks_done=chunks_done, batching=program.batching, started=started,
        )

    def summary(self) -> dict[str, Any]:
        runs = [self._run_summary(i) for i in range(len(self.seeds))]
        steps = env_steps_done(self.config, self.chunks_done)
        return {
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
            "statistics": run_statistics(runs),
            "runs": runs,
        }

    def _run_summary(self, i: int) -> dict[str, Any]:
        rows = self.metrics[i]
        written = rows[~np.isnan(rows[:, EVAL])]
        final = written[-1] if len(written) else np.full(len(METRIC_COLUMNS), np.nan)
        solved_rows = written[written[:, EVAL] >= SOLVED_RETURN]
        out = {"seed": self.seeds[i]}
        if self.grid[i]:
            out["grid"] = self.grid[i]
        out.update(
            final_eval_return_mean=_num(final[EVAL]),
            final_eval_return_std=_num(final[EVAL_STD]),
            first_solved_env_step=int(solved_rows[0, STEP]) if len(solved_rows) else None,
            solved=bool(final[EVAL] >= SOLVED_RETURN),
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
