"""Learning-curve figure: eval return vs env steps, one line per seed, the median, the solve line."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .config import SOLVED_RETURN
from .core.types import METRIC

STEP, EVAL = METRIC["env_step"], METRIC["eval_return_mean"]


def learning_curve(path: str | Path, metrics: np.ndarray, labels: list[str], title: str) -> None:
    """metrics: (runs, evals, columns) as in RunState.metrics; NaN rows are skipped."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for run, label in zip(metrics, labels, strict=False):
        ok = ~np.isnan(run[:, EVAL])
        line = ax.plot(run[ok, STEP], run[ok, EVAL], lw=0.8, alpha=0.45, label=label if len(labels) <= 8 else None)[0]
        solved = np.nonzero(run[ok, EVAL] >= SOLVED_RETURN)[0]
        if len(solved):
            ax.plot(run[ok, STEP][solved[0]], run[ok, EVAL][solved[0]], "o", ms=4, color=line.get_color())
    ok = ~np.isnan(metrics[0, :, EVAL])
    ax.plot(metrics[0, ok, STEP], np.nanmedian(metrics[:, ok, EVAL], axis=0), color="black", lw=2.2, label="median")
    ax.axhline(SOLVED_RETURN, color="tab:red", ls="--", lw=1, label=f"solved ({SOLVED_RETURN:g})")
    ax.set(xlabel="env steps (per seed)", ylabel="greedy eval return", title=title, ylim=(0, 520))
    ax.legend(fontsize=7, loc="lower right", ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
