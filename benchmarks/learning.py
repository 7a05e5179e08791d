"""Learning quality: presets over many seeds, as a table and median/IQR curves vs env steps and seconds.

    python benchmarks/learning.py [--seeds 32] [--tutorial-seeds 8] [--presets default,purejaxrl,seed-tutorial]
                                  [--set KEY=VALUE ...] [--out benchmarks/results] [--replot]

Writes learning.json (every run's curve and the summary), learning.md and learning.png under --out. The
table gives IQM, median and mean with 95% bootstrap CIs and the end-solved fraction with its Wilson
interval, from `cartpole_jax.stats` (what summary.json's "statistics" holds).
The final policy is the one at the end of training; nothing is selected by its eval. Like
`cartpole-jax train`, it gives jax one CPU device per core and spreads the seeds over them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cartpole_jax.host import use_cpu_cores

use_cpu_cores()  # as `cartpole-jax train` does: seeds spread over every core
from cartpole_jax.config import SOLVED_RETURN, resolve  # noqa: E402
from cartpole_jax.driver import train_seeds  # noqa: E402
from cartpole_jax.program import device_description  # noqa: E402
from cartpole_jax.stats import run_statistics, show_ci  # noqa: E402


def measure(preset: str, seeds: int, sets: list[str]) -> dict:
    """Train `seeds` seeds of a preset in one call; curves and per-seed solve facts."""
    _, cfg = resolve(preset, None, sets)
    t0 = time.perf_counter()
    result = train_seeds(cfg, range(seeds), preset=preset)
    wall = time.perf_counter() - t0
    summary = result.summary()
    steps = result.metrics[0, :, 0]
    curves = result.metrics[:, :, 1]
    first = [r["first_solved_env_step"] for r in summary["runs"]]
    seconds_per_step = summary["train_seconds"] / max(summary["env_steps_done"], 1)
    return {
        "preset": preset,
        "num_seeds": seeds,
        "overrides": sets,
        "total_env_steps": summary["total_env_steps"],
        "compile_seconds": summary["compile_seconds"],
        "train_seconds": summary["train_seconds"],
        "wall_seconds": round(wall, 2),
        "ever_solved": sum(f is not None for f in first),
        "solved_at_end": sum(r["solved"] for r in summary["runs"]),
        "first_solved_env_step": first,
        # Seeds run in one program, so a seed's clock is the whole call's: compile + its share of training.
        "seconds_to_solve": [None if f is None else round(summary["compile_seconds"] + f * seconds_per_step, 2) for f in first],
        "final_eval_return": [r["final_eval_return_mean"] for r in summary["runs"]],
        "statistics": summary["statistics"],
        "env_steps": steps.tolist(),
        "eval_return": curves.tolist(),
        "seconds": (summary["compile_seconds"] + steps * seconds_per_step).tolist(),
    }


def _quantiles(values: list) -> str:
    solved = [v for v in values if v is not None]
    if not solved:
        return "–"
    q1, med, q3 = np.percentile(solved, [25, 50, 75])
    return f"{med:,.0f} ({q1:,.0f}–{q3:,.0f})"


def statistics(record: dict) -> dict:
    """stats.run_statistics of a record's runs (recomputed, so older learning.json files get it too)."""
    runs = [{"final_eval_return_mean": f, "first_solved_env_step": s, "solved": f is not None and f >= SOLVED_RETURN}
            for f, s in zip(record["final_eval_return"], record["first_solved_env_step"], strict=True)]
    return run_statistics(runs)


def table(records: list[dict]) -> str:
    rows = [
        "| preset | seeds | solved ever | solved at end [95% CI] | env steps to solve, median (IQR) | env steps to solve, IQM [95% CI] "
        "(solved runs) | seconds to solve, median (IQR) | final return IQM [95% CI] | final return mean [95% CI] (min) "
        "| wall s (compile s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in records:
        finals = np.array(r["final_eval_return"], dtype=float)
        st = statistics(r)
        end = st["solved_at_end"]
        rows.append(
            f"| {r['preset']} | {r['num_seeds']} | {r['ever_solved']}/{r['num_seeds']} "
            f"| {r['solved_at_end']}/{r['num_seeds']} [{end['ci'][0]:.2f}, {end['ci'][1]:.2f}] "
            f"| {_quantiles(r['first_solved_env_step'])} | {show_ci(st['first_solved_env_step']['iqm'], ',.0f')} "
            f"| {_quantiles(r['seconds_to_solve'])} | {show_ci(st['final_eval_return']['iqm'], '.1f')} "
            f"| {show_ci(st['final_eval_return']['mean'], '.1f')} ({np.min(finals):.0f}) "
            f"| {r['wall_seconds']:.0f} ({r['compile_seconds']:.0f}) |"
        )
    return "\n".join(rows)


def plot(records: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), dpi=110)
    for r in records:
        curves = np.array(r["eval_return"], dtype=float)
        q1, med, q3 = np.nanpercentile(curves, [25, 50, 75], axis=0)
        for ax, x in zip(axes, (np.array(r["env_steps"]), np.array(r["seconds"])), strict=True):
            line = ax.plot(x, med, label=f"{r['preset']} ({r['num_seeds']} seeds)")[0]
            ax.fill_between(x, q1, q3, color=line.get_color(), alpha=0.2)
    for ax, label in zip(axes, ("env steps per seed", "seconds (compile included, all seeds in one call)"), strict=True):
        ax.axhline(SOLVED_RETURN, color="tab:red", ls="--", lw=1)
        ax.set(xlabel=label, ylabel="greedy eval return (median, IQR band)", ylim=(0, 520))
        ax.grid(alpha=0.3)
    for ax in axes:  # the presets' run lengths differ by 10x: log scales keep every curve readable
        ax.set_xscale("log")
    axes[0].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=32)
    p.add_argument("--tutorial-seeds", type=int, default=8, help="seeds for seed-tutorial (one update per env step: slow)")
    p.add_argument("--presets", default="default,purejaxrl,seed-tutorial", help="comma-separated; NAME:SEEDS sets a preset's seeds")
    p.add_argument("--set", dest="sets", action="append", default=[], help="override applied to every preset")
    p.add_argument("--out", default="benchmarks/results")
    p.add_argument("--replot", action="store_true", help="redraw learning.png from --out's learning.json; train nothing")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.replot:
        plot(json.loads((out / "learning.json").read_text())["records"], out / "learning.png")
        return 0
    records = []
    for item in args.presets.split(","):
        preset, _, count = item.partition(":")
        seeds = int(count) if count else args.tutorial_seeds if preset == "seed-tutorial" else args.seeds
        records.append(measure(preset, seeds, args.sets))
        print(table(records[-1:]).splitlines()[-1], flush=True)
    import jax

    command = " ".join(["python benchmarks/learning.py", *(argv or sys.argv[1:])])
    from benchmarks.timing import machine

    meta = {"device": f"{device_description()} × {jax.device_count()}", "command": command, "machine": machine()}
    (out / "learning.json").write_text(json.dumps({"meta": meta, "records": records}, indent=1) + "\n")
    (out / "learning.md").write_text(f"# Learning quality\n\n{meta['device']}; `{meta['command']}`\n\n{table(records)}\n")
    plot(records, out / "learning.png")
    print(table(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
