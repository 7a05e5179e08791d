"""Run-directory files: each written atomically (temp file + rename)."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import replacing
from .core.types import METRIC, METRIC_COLUMNS
from .policy import save_policy


def write_atomic(path: str | Path, data: str | bytes) -> None:
    with replacing(path) as tmp, open(tmp, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


def write_json(path: str | Path, obj: Any) -> None:
    write_atomic(path, json.dumps(obj, indent=2, allow_nan=False) + "\n")


def metrics_csv(metrics: np.ndarray, seeds: list[int], grid: list[dict]) -> str:
    keys = sorted({k for g in grid for k in g})
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["run", "seed", *keys, *METRIC_COLUMNS])
    step, rest = METRIC["env_step"], [METRIC[c] for c in METRIC_COLUMNS if c != "env_step"]
    for i, (rows, seed, point) in enumerate(zip(metrics, seeds, grid, strict=False)):
        for row in rows[~np.isnan(rows[:, METRIC["eval_return_mean"]])]:
            w.writerow([i, seed, *(point.get(k, "") for k in keys), int(row[step]), *(_cell(row[c]) for c in rest)])
    return buf.getvalue()


def _cell(x: float) -> str:
    return "" if np.isnan(x) else f"{x:.6g}"


def warm_up_outputs() -> threading.Thread:
    """Import scipy.stats and matplotlib and draw a throwaway figure on a background thread, started
    before training.

    The imports and the first figure's font loading take ~5 s on 2 cores that would otherwise follow
    the training; the compile and the chunks release the GIL, so here they overlap. At nice 19 it runs
    in the cores' idle moments (single-threaded compile passes, host work between chunks) rather than
    slowing the training. Join it before writing the outputs.
    """

    def draw() -> None:
        with contextlib.suppress(AttributeError, OSError):  # lowest priority: idle moments only, never a core the training uses
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)  # on Linux a thread id names the thread
        import matplotlib
        import scipy.stats  # noqa: F401  (the summary's statistics)

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(1, 1))
        ax.plot([0, 1], [0, 1], label="x")
        ax.set_title("x")
        ax.legend()
        fig.canvas.draw()
        plt.close(fig)

    thread = threading.Thread(target=draw, name="warm-up-outputs", daemon=True)
    thread.start()
    return thread


def write_run(out: Path, result, title: str, started: float | None = None) -> dict:
    """Write config.json, metrics.csv, summary.json, policy.npz and learning_curve.png; return the summary.

    The small files with the numbers come first: on a full disk the results survive the plot. With
    `started` (perf_counter at the process's start) summary.json accounts for the whole wall time:
    startup (imports, checks, planning) before the compile, and the outputs after training.
    """
    from .plots import learning_curve

    t0 = time.perf_counter()
    summary = result.summary()
    if started is not None:
        summary["startup_seconds"] = round(result.started - started, 3)
    write_json(out / "config.json", {"preset": result.preset, **result.config.to_dict()})
    write_atomic(out / "metrics.csv", metrics_csv(result.metrics, result.seeds, result.grid))
    write_json(out / "summary.json", summary)
    save_policy(out / "policy.npz", result.params, result.seeds, result.config.to_dict())
    with replacing(out / "learning_curve.png") as tmp:
        learning_curve(tmp, result.metrics, [f"seed {s}" for s in result.seeds], title)
    if started is not None:  # written again, now that the outputs' time is known
        summary["outputs_seconds"] = round(time.perf_counter() - t0, 3)
        write_json(out / "summary.json", summary)
    return summary
