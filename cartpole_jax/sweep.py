"""Hyperparameter sweeps: the Cartesian product of grid values × seeds, one compiled program per
static combination, vmappable values batched inside each program.

    >>> from cartpole_jax.sweep import parse_grid
    >>> parse_grid(["learning_rate=1e-3,3e-4", "hidden_sizes=[32,32],[64,64]"])
    {'learning_rate': [0.001, 0.0003], 'hidden_sizes': [[32, 32], [64, 64]]}
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import replacing
from .config import (
    FIELDS,
    SOLVED_RETURN,
    VMAP_FIELDS,
    Config,
    ConfigError,
    apply,
    check_hyperparams,
    check_value,
    parse_value,
    validate,
)

_OPEN, _CLOSE = "[{(", "]})"


def split_values(text: str) -> list[str]:
    """Split on commas outside brackets and quotes, so `[32,32],[64,64]` gives two values."""
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in _OPEN:
            depth += 1
        elif ch in _CLOSE:
            depth -= 1
            if depth < 0:
                raise ValueError(f"unmatched {ch!r}")
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth or quote:
        raise ValueError("unclosed bracket or quote")
    return [*parts, text[start:]]


def parse_grid(texts: Sequence[str]) -> dict[str, list[Any]]:
    """`KEY=V1,V2,...` texts (the CLI's --grid) to {key: [values]} in order given; raises ConfigError."""
    grid: dict[str, list[Any]] = {}
    for text in texts:
        key, sep, rest = text.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"expects KEY=V1,V2,...; got {text!r}", "grid")
        if key not in FIELDS:
            try:
                apply(Config(), {key: None})  # raises the shared "unknown config key ... (did you mean ...)"
            except ConfigError as err:
                raise ConfigError(f": {err}", "grid") from None
        if key in grid:
            raise ConfigError(f"{key} given twice; list all its values at once: {key}=V1,V2,...", "grid")
        if not rest.strip():
            raise ConfigError(f"{key}: empty value list (expected {key}=V1,V2,...)", "grid")
        try:
            items = [v.strip() for v in split_values(rest)]
        except ValueError as err:
            raise ConfigError(f"{key}: malformed value list {rest!r} ({err})", "grid") from None
        if any(not v for v in items):
            raise ConfigError(f"{key}: empty value in {rest!r}", "grid")
        grid[key] = [parse_value(v) for v in items]
    return grid


MAX_RUNS = 2**17  # grid points × seeds per sweep: far beyond any memory plan, and refused before expanding


def check_size(grid: dict[str, list[Any]], num_seeds: int = 1) -> int:
    """The number of runs (grid points × seeds), counted without expanding; above MAX_RUNS a ConfigError."""
    points = math.prod(len(v) for v in grid.values())
    if points * num_seeds > MAX_RUNS:
        sizes = " × ".join(str(len(v)) for v in grid.values())
        raise ConfigError(f"{sizes} = {points:,} grid points × {num_seeds} seed(s) = {points * num_seeds:,} runs; "
                          f"a sweep takes at most {MAX_RUNS:,}", "grid")
    return points * num_seeds


@dataclass(frozen=True)
class Point:
    """One grid point: its overrides (as stored in the config) and the validated config of its static values.

    The point's vmappable values are not in `config`: they are inputs of the program it shares.
    """

    values: dict[str, Any]
    config: Config


def expand(cfg: Config, grid: dict[str, list[Any]]) -> list[Point]:
    """Every combination of grid values, first key slowest, each validated; raises ConfigError.

    Cheap on big grids: each value is checked once, each combination of static values validated once,
    and a point itself only checks the relations between its vmappable values.
    """
    check_size(grid)
    stored = {k: _stored_values(cfg, k, values) for k, values in grid.items()}
    static_keys = [k for k in grid if not FIELDS[k].metadata["vmap"]]
    vmap_keys = [k for k in grid if FIELDS[k].metadata["vmap"]]
    statics = {}
    for combo in itertools.product(*(stored[k] for k in static_keys)):
        raw = dict(zip(static_keys, combo, strict=True))
        try:
            statics[_ident(raw)] = validate(apply(cfg, raw))
        except ConfigError as err:
            raise ConfigError(f"point {_label(raw)}: {err}", "grid") from None
    base = {n: getattr(cfg, n) for n in VMAP_FIELDS}
    points: list[Point] = []
    for combo in itertools.product(*stored.values()):
        values = dict(zip(grid, combo, strict=True))
        if vmap_keys:
            try:
                check_hyperparams({**base, **{k: values[k] for k in vmap_keys}})
            except ConfigError as err:
                raise ConfigError(f"point {_label(values)}: {err}", "grid") from None
        points.append(Point(values, statics[_ident({k: values[k] for k in static_keys})]))
    return points


def _stored_values(cfg: Config, key: str, values: list[Any]) -> list[Any]:
    """A key's grid values as the config stores them, each range-checked; a value given twice is refused."""
    out, seen = [], set()
    for v in values:
        try:
            check_value(key, v)
            normal = apply(cfg, {key: v}).to_dict()[key]
        except ConfigError as err:
            raise ConfigError(f"point {key}={_show(v)}: {err}", "grid") from None
        if _ident(normal) in seen:
            raise ConfigError(f"point {key}={_show(v)} appears twice (a value is listed twice)", "grid")
        seen.add(_ident(normal))
        out.append(normal)
    return out


def _ident(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _label(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_show(v)}" for k, v in values.items())


def _show(v: Any) -> str:
    return json.dumps(v) if isinstance(v, (list, dict)) else str(v)


@dataclass(frozen=True)
class Group:
    """Runs that share one compiled program: same static fields, different vmappable values/seeds."""

    config: Config  # the base config with this group's static overrides
    static: dict[str, Any]  # the static grid values that define the group
    runs: list[int]  # indices into the sweep's run list


def plan_runs(cfg: Config, grid: dict[str, list[Any]], seeds: Sequence[int]) -> tuple[list[dict], list[int], list[Group]]:
    """(grid point per run, seed per run, program groups): seeds vary fastest, groups in first-seen order."""
    check_size(grid, len(seeds))
    points = expand(cfg, grid)
    run_grid = [p.values for p in points for _ in seeds]
    run_seeds = [int(s) for _ in points for s in seeds]
    static_keys = [k for k in grid if not FIELDS[k].metadata["vmap"]]
    groups: dict[tuple, Group] = {}
    for i, p in enumerate(points):
        key = p.config.static_key()
        if key not in groups:
            static = {k: p.values[k] for k in static_keys}
            groups[key] = Group(apply(cfg, static), static, [])
        groups[key].runs.extend(range(i * len(seeds), (i + 1) * len(seeds)))
    return run_grid, run_seeds, list(groups.values())


@dataclass
class SweepResult:
    """The outcome of a sweep: one RunResult per program and the run order of the whole sweep."""

    config: Config
    preset: str
    grid: dict[str, list[Any]]
    groups: list[Group]
    results: list[Any]  # run.RunResult per group
    num_runs: int
    num_programs_compiled: int

    def run_index(self) -> list[tuple[int, int]]:
        """For each sweep run, (group index, index within that group's RunResult)."""
        where = [(0, 0)] * self.num_runs
        for g, group in enumerate(self.groups):
            for j, i in enumerate(group.runs):
                where[i] = (g, j)
        return where

    def metrics(self) -> np.ndarray:
        """(runs, evals, columns) in sweep order; groups with fewer evaluations are NaN-padded."""
        evals = max(r.metrics.shape[1] for r in self.results)
        out = np.full((self.num_runs, evals, self.results[0].metrics.shape[2]), np.nan, np.float32)
        for i, (g, j) in enumerate(self.run_index()):
            m = self.results[g].metrics[j]
            out[i, : len(m)] = m
        return out

    def summary(self) -> dict[str, Any]:
        """train's summary.json format over all runs, plus the grid and the program count."""
        parts = [r.summary() for r in self.results]
        runs = [parts[g]["runs"][j] for g, j in self.run_index()]
        compile_s = sum(p["compile_seconds"] for p in parts)
        train_s = sum(p["train_seconds"] for p in parts)
        steps = sum(p["env_steps_done"] * p["num_runs"] for p in parts)
        totals = {p["total_env_steps"] for p in parts}
        out = dict(parts[0])
        out.update(
            num_seeds=len({r["seed"] for r in runs}),
            num_runs=len(runs),
            total_env_steps=totals.pop() if len(totals) == 1 else None,  # None: it is a grid key
            env_steps_done=sum(p["env_steps_done"] * p["num_runs"] for p in parts) // max(len(runs), 1),
            compile_seconds=round(compile_s, 3),
            train_seconds=round(train_s, 3),
            env_steps_per_second=round(steps / max(train_s, 1e-9), 1),
            runs_per_second=round(len(runs) / max(train_s, 1e-9), 3),
            solve_rate=float(np.mean([r["solved"] for r in runs])),
            statistics=sweep_statistics(runs),
            grid=self.grid,
            num_programs=len(self.groups),
            num_programs_compiled=self.num_programs_compiled,
            programs=[
                {"static": g.static, "num_runs": len(g.runs), "compile_seconds": p["compile_seconds"], "train_seconds": p["train_seconds"]}
                for g, p in zip(self.groups, parts, strict=True)
            ],
            runs=runs,
        )
        return out


def sweep_statistics(runs: list[dict]) -> dict[str, Any]:
    """stats.run_statistics over all runs, plus the same per grid point (in point_table's order) under "points"."""
    from .stats import run_statistics

    points = [{"grid": group[0].get("grid", {}), **run_statistics(group)} for _, group in point_table({"runs": runs})]
    return {**run_statistics(runs), "points": points}


def run_sweep(
    cfg: Config,
    grid: dict[str, list[Any]],
    seeds: Sequence[int],
    *,
    preset: str = "custom",
    devices: int | str | None = None,
    batching: str = "auto",
    progress: Callable[[int, Group], Callable | None] | None = None,
) -> SweepResult:
    """Train every (grid point, seed); `progress(i, group)` may return a per-chunk callback for program i."""
    from .driver import train_runs

    run_grid, run_seeds, groups = plan_runs(cfg, grid, seeds)
    results, compiled = [], 0
    for i, group in enumerate(groups):
        callback = progress(i, group) if progress else None
        res = train_runs(
            group.config, [run_seeds[k] for k in group.runs], [run_grid[k] for k in group.runs],
            preset=preset, devices=devices, batching=batching, progress=callback,
        )
        compiled += res.compile_seconds > 0  # 0 means the program came from run.Program's cache
        results.append(res)
    return SweepResult(cfg, preset, grid, groups, results, len(run_seeds), compiled)


CSV_RESULT_COLUMNS = ("seed", "final_eval_return_mean", "final_eval_return_std", "solved", "first_solved_env_step")


def sweep_csv(summary: dict[str, Any]) -> str:
    """One row per run: its index, grid values, seed and final results."""
    keys = list(summary["grid"])
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["run", *keys, *CSV_RESULT_COLUMNS])
    for i, r in enumerate(summary["runs"]):
        grid = [_show(r.get("grid", {}).get(k, "")) for k in keys]
        w.writerow([i, *grid, *("" if r[c] is None else r[c] for c in CSV_RESULT_COLUMNS)])
    return buf.getvalue()


def points_csv(summary: dict[str, Any]) -> str:
    """One row per grid point: its values and the statistics over its seeds (stats.flat_columns)."""
    from .stats import flat_columns, flat_row

    keys = list(summary["grid"])
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["point", *keys, *flat_columns()])
    for i, point in enumerate(summary["statistics"]["points"]):
        w.writerow([i, *(_show(point["grid"].get(k, "")) for k in keys), *("" if v is None else v for v in flat_row(point))])
    return buf.getvalue()


def point_table(summary: dict[str, Any]) -> list[tuple[str, list[dict]]]:
    """Runs grouped by grid point, in sweep order: [(label, [run summaries])], one key per label line."""
    table: dict[str, list[dict]] = {}
    for r in summary["runs"]:
        label = "\n".join(f"{k}={_show(v)}" for k, v in r.get("grid", {}).items()) or "base config"
        table.setdefault(label, []).append(r)
    return list(table.items())


def sweep_plot(path: str, summary: dict[str, Any], title: str) -> None:
    """Final eval return and first-solved step per grid point; each dot is a seed, the bar its IQM with a 95% bootstrap CI."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = point_table(summary)
    x = np.arange(len(points))
    width = max(7.0, min(0.35 * len(points) + 3, 40))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(width, 7), dpi=100, sharex=True)
    total = summary["total_env_steps"] or max(r.get("grid", {}).get("total_env_steps", 0) for r in summary["runs"])
    jitter = np.linspace(-0.2, 0.2, max(len(points[0][1]), 1)) if len(points[0][1]) > 1 else [0.0]
    stats = summary.get("statistics", {}).get("points") or sweep_statistics(summary["runs"])["points"]
    for xi, (_, runs), st in zip(x, points, stats, strict=True):
        finals = np.array([np.nan if r["final_eval_return_mean"] is None else r["final_eval_return_mean"] for r in runs])
        solved = np.array([np.nan if r["first_solved_env_step"] is None else r["first_solved_env_step"] for r in runs], float)
        dx = np.resize(jitter, len(runs))
        top.plot(xi + dx, finals, "o", ms=3, color="tab:blue", alpha=0.6)
        _iqm_bar(top, xi, st["final_eval_return"]["iqm"])
        ok = np.isfinite(solved)
        bottom.plot(xi + dx[ok], solved[ok], "o", ms=3, color="tab:green", alpha=0.6)
        bottom.plot(xi + dx[~ok], np.full((~ok).sum(), total), "x", ms=4, color="tab:red", alpha=0.6)
        _iqm_bar(bottom, xi, st["first_solved_env_step"]["iqm"])
    top.axhline(SOLVED_RETURN, color="tab:red", ls="--", lw=1)
    top.set(ylabel="final greedy eval return\n(bar: IQM, 95% CI)", ylim=(0, 520), title=title)
    bottom.set(ylabel="first env step solved\n(x: never, drawn at the end;\nbar: IQM of the solved, 95% CI)", ylim=(0, total * 1.05))
    bottom.set_xticks(x, [label for label, _ in points], rotation=90 if len(points) > 12 else 0, fontsize=7)
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _iqm_bar(ax, x: float, est: dict) -> None:
    """A black bar at the IQM with its CI as an error bar; nothing where there is no value."""
    if est["value"] is None:
        return
    ax.hlines(est["value"], x - 0.3, x + 0.3, color="black", lw=2)
    ax.errorbar(x, est["value"], yerr=[[est["value"] - est["ci"][0]], [est["ci"][1] - est["value"]]], color="black", capsize=4, lw=1.2)


def network_groups(result: SweepResult) -> list[list[int]]:
    """Sweep runs grouped by network shape and kind, since one policy file stacks equal shapes only."""
    by_net: dict[tuple, list[int]] = {}
    for i, (g, _) in enumerate(result.run_index()):
        c = result.groups[g].config
        by_net.setdefault((c.hidden_sizes, c.activation, c.dueling), []).append(i)
    return list(by_net.values())


def write_sweep(out: Path, result: SweepResult, title: str) -> dict[str, Any]:
    """Write a sweep directory (train's files plus sweep.csv and sweep.png); the small files with the numbers first."""
    from .outputs import metrics_csv, write_atomic, write_json
    from .plots import learning_curve
    from .policy import save_policy

    summary = result.summary()
    metrics = result.metrics()
    seeds = [r["seed"] for r in summary["runs"]]
    grids = [r.get("grid", {}) for r in summary["runs"]]
    write_json(out / "config.json", {"preset": result.preset, **result.config.to_dict(), "grid": result.grid})
    write_atomic(out / "metrics.csv", metrics_csv(metrics, seeds, grids))
    params = [result.results[g].params[j] for g, j in result.run_index()]
    nets = network_groups(result)
    names = ["policy.npz" if len(nets) == 1 else f"policy-{n}.npz" for n in range(len(nets))]
    for name, runs in zip(names, nets, strict=True):
        for k, i in enumerate(runs):
            summary["runs"][i]["policy"] = {"file": name, "index": k}
    write_atomic(out / "sweep.csv", sweep_csv(summary))
    write_atomic(out / "sweep_points.csv", points_csv(summary))
    write_json(out / "summary.json", summary)
    for name, runs in zip(names, nets, strict=True):
        net_cfg = result.groups[result.run_index()[runs[0]][0]].config
        save_policy(out / name, [params[i] for i in runs], [seeds[i] for i in runs], net_cfg.to_dict())
    labels = [f"seed {s} " + ", ".join(f"{k}={_show(v)}" for k, v in g.items()) for s, g in zip(seeds, grids, strict=True)]
    _write_png(out / "learning_curve.png", lambda p: learning_curve(p, metrics, labels, title))
    _write_png(out / "sweep.png", lambda p: sweep_plot(p, summary, title))
    return summary


def _write_png(path: Path, draw: Callable[[str], None]) -> None:
    """Draw into a temp file beside path, then rename, so a crash never leaves half a figure."""
    with replacing(path) as tmp:
        draw(tmp)


def throughput(summary: dict[str, Any]) -> str:
    """A one-line speed report for the end of a sweep."""
    rate = summary["env_steps_per_second"]
    return (
        f"{summary['num_runs']} runs in {summary['num_programs']} program(s): compile {summary['compile_seconds']:.1f} s, "
        f"train {summary['train_seconds']:.1f} s, {summary['runs_per_second']:.3g} runs/s, "
        f"{rate:,.0f} env steps/s"
    )
