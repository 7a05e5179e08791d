"""Experiment tracking: each run's metrics streamed to TensorBoard and/or W&B at every chunk boundary.

Fed from the driver's progress callback (`Progress.metrics`, the host copy of the metrics table it
already reads), never from inside the compiled program. Per run (seed × grid point) it logs the
metric rows written since the last chunk at their env step, the chunk's env steps/s, and the config
with the run's grid values as hyperparameters. RUN_DIR/tracking.json records, per logger, the last
env step each run logged (and the W&B run ids), so `resume` logs only what is new: no step twice,
none missing (the metrics table holds every row since the start, so even a gap is filled).

    TensorBoard: RUN_DIR/tensorboard/<run>/ event files (tensorboardX), `tensorboard --logdir RUN_DIR/tensorboard`
    W&B: one W&B run per run, grouped by the run directory; files under RUN_DIR/wandb/ (WANDB_MODE=offline works)
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import secrets
import shutil
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from .core.metrics import METRIC
from .errors import UsageError

# name: (module it needs, pip extra that installs it)
LOGGERS = {"tensorboard": ("tensorboardX", "tensorboard"), "wandb": ("wandb", "wandb")}
RECORD = "tracking.json"
TB_DIR = "tensorboard"
TAGS = {  # metric column -> logged name
    "eval_return_mean": "eval/return_mean",
    "eval_return_std": "eval/return_std",
    "train_return_mean": "train/return_mean",
    "loss": "train/loss",
    "epsilon": "train/epsilon",
}
RATE = "perf/env_steps_per_second"  # all runs of the program together, over the last chunk
STEP = METRIC["env_step"]


def add_flag(p, resume: bool = False) -> None:
    """The --log flag of train, sweep and resume."""
    default = "; default: the loggers the run already streams to (none: --log none)" if resume else ""
    p.add_argument("--log", action="append", default=[], metavar="tensorboard|wandb",
                   help="stream each run's metrics at every chunk: tensorboard (RUN_DIR/tensorboard/) and/or wandb "
                        "(one W&B run per run, grouped by the run directory); repeatable or comma-separated; "
                        f"needs pip install 'cartpole-jax[tensorboard]' or '[wandb]'{default}")


def parse(values: Sequence[str]) -> tuple[str, ...]:
    """The loggers asked for (repeated or comma lists; `none` for none), each checked to be installed; raises UsageError(param='log')."""
    names: list[str] = []
    for value in values:
        for name in (part.strip().lower() for part in value.split(",")):
            if name == "none":
                continue
            if name and name not in LOGGERS:
                raise UsageError(f"{name!r} is not a logger; choose from {', '.join(LOGGERS)} (repeatable or comma-separated)", "log")
            if name and name not in names:
                names.append(name)
    for name in names:
        module, extra = LOGGERS[name]
        if not _installed(module):
            raise UsageError(f"{name} needs the {module} package, which is not installed: pip install 'cartpole-jax[{extra}]'", "log")
    return tuple(names)


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # ValueError: a module set to None in sys.modules (blocked)
        return False


def recorded(out: Path) -> tuple[str, ...]:
    """The loggers RUN_DIR's earlier commands used (what `resume` continues when given no --log)."""
    return tuple(n for n in _read_record(out) if n in LOGGERS)


def remove(out: Path) -> None:
    """Remove an earlier run's TensorBoard logs and record (a fresh run starts its logs afresh; W&B's files stay)."""
    shutil.rmtree(out / TB_DIR, ignore_errors=True)
    (out / RECORD).unlink(missing_ok=True)


def run_names(seeds: Sequence[int], grid: Sequence[dict]) -> list[str]:
    """A readable, unique, path-safe name per run: index, seed, grid values."""
    names = []
    for i, (seed, point) in enumerate(zip(seeds, grid, strict=True)):
        values = "".join(f"-{k}={json.dumps(v) if isinstance(v, (list, dict)) else v}" for k, v in point.items())
        names.append(re.sub(r"[^A-Za-z0-9_.,=+-]", "_", f"run{i:03d}-seed{seed}{values}")[:120])
    return names


def run_specs(config: dict, preset: str, seeds: Sequence[int], grid: Sequence[dict]) -> list[tuple[str, dict]]:
    """(name, hyperparameters) per run: the config with the run's grid values, seed and preset (TensorBoard's hparams, W&B's config)."""
    names = run_names(seeds, grid)
    return [(n, {**config, **point, "seed": seed, "preset": preset}) for n, seed, point in zip(names, seeds, grid, strict=True)]


def chain(*callbacks: Callable | None) -> Callable | None:
    """One progress callback calling each given one in turn (None where none is given)."""
    given = [c for c in callbacks if c is not None]

    def call(p) -> None:
        for c in given:
            c(p)

    return call if given else None


class Tracker:
    """The chosen loggers of one run directory; `feed` makes the per-chunk callback of a program's runs."""

    def __init__(self, out: Path | None, names: Sequence[str], runs: Sequence[tuple[str, dict]], fresh: bool):
        """`out` None: this process writes no run directory (a non-writer host of a multi-host sweep); `fresh`: a new run."""
        self.out, self.runs = Path(out) if out is not None else None, list(runs)
        if self.out is None:
            names = ()
        elif fresh:
            remove(self.out)
        record = _read_record(self.out) if names else {}
        self.sinks = {name: SINKS[name](self.out, self.runs, record.get(name, {})) for name in names}
        self.logged = {name: _logged(record.get(name, {}), len(self.runs)) for name in names}
        # One writer thread: logging (and TensorBoard's fsyncs) overlaps the next chunk instead of pausing the run.
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="cartpole-jax-tracking") if self.sinks else None
        self._pending: Future | None = None

    def feed(self, runs: Sequence[int], start_env_steps: int = 0) -> Callable | None:
        """A Progress callback for the program training sweep runs `runs` (its run j is runs[j]); None if nothing logs."""
        if not self.sinks:
            return None
        last = {"steps": start_env_steps, "elapsed": 0.0}

        def update(p) -> None:
            seconds = p.elapsed - last["elapsed"]
            rate = (p.env_steps - last["steps"]) * len(runs) / seconds if seconds > 0 else None
            last.update(steps=p.env_steps, elapsed=p.elapsed)
            self.wait()  # at most one chunk behind; its errors surface here
            self._pending = self._worker.submit(self._log, list(runs), p, rate)

        return update

    def _log(self, runs: list[int], p, rate: float | None) -> None:
        """Log a chunk's new points (on the writer thread), flush, then record what was logged."""
        for j, i in enumerate(runs):
            points = new_points(p.metrics[j], p.env_steps, rate)
            for name, sink in self.sinks.items():
                todo = [(s, v) for s, v in points if s > self.logged[name][i]]
                for step, values in todo:
                    sink.log(i, step, values)
                if todo:
                    self.logged[name][i] = todo[-1][0]
        for sink in self.sinks.values():
            sink.flush()  # on disk before the record says so: a crash can repeat a chunk's points, never lose them
        self._write_record()

    def wait(self) -> None:
        """Until the chunk handed to the writer thread is logged; raises what it raised."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def _write_record(self) -> None:
        from .outputs import write_json

        write_json(self.out / RECORD, {n: {**s.record(), "logged_env_step": self.logged[n]} for n, s in self.sinks.items()})

    def close(self, code: int = 0) -> None:
        try:
            self.wait()
        finally:
            for sink in self.sinks.values():
                sink.close(code)
            if self._worker is not None:
                self._worker.shutdown()

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, kind, err, tb) -> None:
        self.close(0 if kind is None else 1)


def new_points(rows: np.ndarray, env_steps: int, rate: float | None) -> list[tuple[int, dict[str, float]]]:
    """(env step, {name: value}) of one run's written metric rows and the chunk's rate, in step order; NaNs left out."""
    points: dict[int, dict[str, float]] = {}
    for row in rows[~np.isnan(rows[:, STEP])]:
        values = {tag: float(row[METRIC[col]]) for col, tag in TAGS.items() if np.isfinite(row[METRIC[col]])}
        points.setdefault(int(row[STEP]), {}).update(values)
    if rate is not None:
        points.setdefault(int(env_steps), {})[RATE] = float(rate)
    return sorted(points.items())


def _read_record(out: Path) -> dict:
    try:
        data = json.loads((out / RECORD).read_text())
    except (OSError, ValueError):  # none yet, or unreadable: log from the start
        return {}
    return data if isinstance(data, dict) else {}


def _logged(entry: dict, n: int) -> list[int]:
    steps = entry.get("logged_env_step")
    return [int(s) for s in steps] if isinstance(steps, list) and len(steps) == n else [-1] * n


def _scalar(v: Any) -> bool | int | float | str:
    """TensorBoard's hparams take bools, numbers and strings only: anything else as JSON."""
    return v if isinstance(v, (bool, int, float, str)) else json.dumps(v)


class TensorBoardSink:
    """One tensorboardX FileWriter per run under RUN_DIR/tensorboard/<run name>/: scalars and the hparams plugin's summaries."""

    def __init__(self, out: Path, runs: list[tuple[str, dict]], entry: dict):
        from tensorboardX import FileWriter
        from tensorboardX.proto.summary_pb2 import Summary
        from tensorboardX.summary import hparams

        self.summary = Summary
        started = _logged(entry, len(runs))
        # flush_secs is long: `flush` after each chunk decides when events reach the disk
        self.writers = [FileWriter(str(out / TB_DIR / name), flush_secs=3600) for name, _ in runs]
        for writer, (_, hp), done in zip(self.writers, runs, started, strict=True):
            if done < 0:  # once per run: a resumed run keeps the hparams it started with
                metrics = dict.fromkeys([*TAGS.values(), RATE], 0.0)  # names only: the values are the logged scalars
                for summary in hparams({k: _scalar(v) for k, v in hp.items()}, metrics):
                    writer.add_summary(summary)

    def log(self, i: int, step: int, values: dict[str, float]) -> None:
        # One event per step holding all its scalars (as tf.summary writes them): tensorboardX passes each event
        # through a multiprocessing queue, which costs more than the rest of the logging together.
        value = [self.summary.Value(tag=tag, simple_value=v) for tag, v in values.items()]
        self.writers[i].add_summary(self.summary(value=value), step)

    def flush(self) -> None:
        for w in self.writers:
            w.flush()

    def record(self) -> dict:
        return {}

    def close(self, code: int) -> None:
        for w in self.writers:
            w.close()


class WandbSink:
    """One W&B run per run, grouped by the run directory; `env_step` is every metric's x axis."""

    def __init__(self, out: Path, runs: list[tuple[str, dict]], entry: dict):
        import wandb

        ids = entry.get("ids")
        self.ids = ids if isinstance(ids, list) and len(ids) == len(runs) else [secrets.token_hex(4) for _ in runs]
        group = str(out.resolve())[-128:]  # W&B's limit on a group name
        settings = wandb.Settings(console="off", silent=True, save_code=False)
        self.runs = []
        for (name, hp), run_id in zip(runs, self.ids, strict=True):
            run = wandb.init(project=os.environ.get("WANDB_PROJECT", "cartpole-jax"), group=group, name=f"{out.name}/{name}",
                             id=run_id, resume="allow", dir=str(out), config=hp, reinit="create_new", settings=settings)
            run.define_metric("env_step")
            run.define_metric("*", step_metric="env_step")
            self.runs.append(run)

    def log(self, i: int, step: int, values: dict[str, float]) -> None:
        self.runs[i].log({"env_step": step, **values})

    def flush(self) -> None:
        pass  # W&B's service process writes and uploads on its own

    def record(self) -> dict:
        return {"ids": self.ids}

    def close(self, code: int) -> None:
        for run in self.runs:
            run.finish(exit_code=code)


SINKS = {"tensorboard": TensorBoardSink, "wandb": WandbSink}
