"""Run directories: refuse to clobber, write every file atomically (temp file + rename)."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import replacing
from .config import ConfigError
from .policy import save_policy
from .types import METRIC_COLUMNS


def check_out_dir(path: str | Path, force: bool) -> Path:
    """Refuse a path that is a file, or a non-empty directory without force; create nothing."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--out {path}: exists and is not a directory")
    if path.is_dir() and any(path.iterdir()) and not force:
        raise ConfigError(f"--out {path}: directory is not empty (pass --force to overwrite)")
    return path


def prepare_out_dir(path: str | Path, force: bool) -> Path:
    """Create the run directory; a non-empty one is an error unless force."""
    path = check_out_dir(path, force)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"--out {path}: cannot create it ({err.strerror})") from None
    if not os.access(path, os.W_OK):
        raise ConfigError(f"--out {path}: not writable")
    return path


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
    for i, (rows, seed, point) in enumerate(zip(metrics, seeds, grid, strict=False)):
        for row in rows[~np.isnan(rows[:, 1])]:
            w.writerow([i, seed, *(point.get(k, "") for k in keys), int(row[0]), *(_cell(x) for x in row[1:])])
    return buf.getvalue()


def _cell(x: float) -> str:
    return "" if np.isnan(x) else f"{x:.6g}"


def write_run(out: Path, result, title: str) -> dict:
    """Write config.json, metrics.csv, summary.json, policy.npz and learning_curve.png; return the summary."""
    from .plots import learning_curve

    summary = result.summary()
    write_json(out / "config.json", {"preset": result.preset, **result.config.to_dict()})
    write_atomic(out / "metrics.csv", metrics_csv(result.metrics, result.seeds, result.grid))
    save_policy(out / "policy.npz", result.params, result.seeds, result.config.to_dict())
    with replacing(out / "learning_curve.png") as tmp:
        learning_curve(tmp, result.metrics, [f"seed {s}" for s in result.seeds], title)
    write_json(out / "summary.json", summary)
    return summary
