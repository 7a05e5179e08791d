"""`cartpole-jax compare RUN_DIR [RUN_DIR ...]`: runs of several configs over seeds, compared with CIs.

Each run directory is one entry; a sweep directory gives one entry per grid point. For every pair it
gives the probability of improvement P(X > Y) + 0.5 P(X = Y) of the final greedy return with a
bootstrap CI, and for every entry IQM, median and mean with CIs (`stats.py`). Writes compare.json,
aggregates.png and profiles.png into --out.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ..config import SOLVED_RETURN, ConfigError

FILES = ("compare.json", "aggregates.png", "profiles.png")


USES_JAX = False  # the CLI starts jax only for commands that need it


def add_parser(sub) -> None:
    p = sub.add_parser("compare", help="compare run or sweep directories over seeds: probability of improvement, "
                                       "IQM/median/mean with CIs, performance profiles")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                   help="directories written by train, resume or sweep (a sweep's grid points are separate entries)")
    p.add_argument("--out", metavar="DIR",
                   help="where compare.json, aggregates.png and profiles.png are written, replacing those three files if "
                        "there (default runs/compare-TIMESTAMP); a table of the results is printed")
    p.add_argument("--quiet", action="store_true", help="print only the output directory")


def main(args) -> int:
    from .common import default_out, prepare_out_dir

    entries = load_entries(args.run_dirs)
    result = compare(entries)
    out = Path(args.out or default_out("compare"))
    out = prepare_out_dir(out, force=True)
    from ..atomic import replacing
    from ..outputs import write_json

    write_json(out / "compare.json", result)
    for name, draw in (("aggregates.png", aggregates_plot), ("profiles.png", profiles_plot)):
        with replacing(out / name) as tmp:  # a crash never leaves half a figure
            draw(tmp, result)
    if not args.quiet:
        print("\n".join(table(result)))
    print(f"compare directory: {out}")
    return 0


def load_entries(run_dirs: list[str]) -> list[dict[str, Any]]:
    """[{label, run_dir, grid, runs}] from each directory's summary.json; a sweep's grid points become separate entries."""
    from ..sweep import point_table

    entries: list[dict[str, Any]] = []
    for d in run_dirs:
        summary = _read_summary(Path(d))
        if summary.get("failed") or summary.get("env_steps_done") != summary.get("total_env_steps"):
            print(f"cartpole-jax: warning: {d}: the run did not finish; its final returns are where it stopped", file=sys.stderr)
        if "grid" in summary:
            for label, runs in point_table(summary):
                name = f"{d} {label.replace(chr(10), ', ')}"
                entries.append({"label": name, "run_dir": d, "grid": runs[0].get("grid", {}), "runs": runs})
        else:
            entries.append({"label": d, "run_dir": d, "grid": {}, "runs": summary["runs"]})
    seen: dict[str, int] = {}
    for e in entries:  # the same directory twice (a run against itself) still gets two names
        seen[e["label"]] = seen.get(e["label"], 0) + 1
        if seen[e["label"]] > 1:
            e["label"] += f" ({seen[e['label']]})"
    return entries


def _read_summary(run_dir: Path) -> dict:
    path = run_dir / "summary.json"
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: no such run directory")
    try:
        summary = json.loads(path.read_text())
        ok = isinstance(summary, dict) and isinstance(summary.get("runs"), list) and all(
            "final_eval_return_mean" in r for r in summary["runs"])
    except FileNotFoundError:
        raise ConfigError(f"{run_dir}: no summary.json (not a finished run or sweep directory)") from None
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise ConfigError(f"{path}: not a readable run summary ({err.__class__.__name__})") from None
    if not ok:
        raise ConfigError(f"{path}: not a run summary (no per-run final returns)")
    return summary


def finals(entry: dict) -> list[float]:
    return [r["final_eval_return_mean"] for r in entry["runs"] if r["final_eval_return_mean"] is not None]


def compare(entries: list[dict]) -> dict[str, Any]:
    """compare.json: per entry its statistics, per pair the probability of improvement, the performance profiles."""
    from ..stats import METHOD, probability_of_improvement, profile, run_statistics

    thresholds = np.linspace(0, 500, 101).tolist()
    pairs = []
    for i, x in enumerate(entries):
        for y in entries[i + 1:]:
            if finals(x) and finals(y):
                pairs.append({"x": x["label"], "y": y["label"], **probability_of_improvement(finals(x), finals(y))})
    return {
        "method": METHOD + "; probability of improvement: P(X > Y) + 0.5 P(X = Y) over final greedy returns, "
                           "X and Y resampled independently",
        "entries": [{"label": e["label"], "run_dir": e["run_dir"], "grid": e["grid"], "num_runs": len(e["runs"]),
                     "statistics": run_statistics(e["runs"])} for e in entries],
        "probability_of_improvement": pairs,
        "profile": {"thresholds": thresholds, "fraction_above": {e["label"]: profile(finals(e), thresholds) for e in entries}},
    }


def table(result: dict) -> list[str]:
    """Plain lines: each entry's final-return IQM with its CI, then each pair's probability of improvement."""
    from ..stats import show_ci

    lines = []
    for e in result["entries"]:
        f, end = e["statistics"]["final_eval_return"], e["statistics"]["solved_at_end"]
        lines.append(f"{e['label']}: {f['n']} runs, final return IQM {show_ci(f['iqm'], '.1f')}, median {show_ci(f['median'], '.1f')}, "
                     f"solved at the end {end['solved']}/{end['n']}")
    for p in result["probability_of_improvement"]:
        lines.append(f"P({p['x']} > {p['y']}) = {show_ci(p, '.3f')}")
    return lines


def aggregates_plot(path: str, result: dict) -> None:
    """IQM, median and mean of the final return per entry, each with its 95% CI as an error bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    entries = result["entries"]
    y = np.arange(len(entries))
    fig, axes = plt.subplots(1, 3, figsize=(11, 1.2 + 0.45 * len(entries)), dpi=110, sharey=True)
    for ax, name in zip(axes, ("iqm", "median", "mean"), strict=True):
        for yi, e in zip(y, entries, strict=True):
            est = e["statistics"]["final_eval_return"][name]
            if est["value"] is not None:
                err = [[est["value"] - est["ci"][0]], [est["ci"][1] - est["value"]]]
                ax.errorbar(est["value"], yi, xerr=err, fmt="o", capsize=4, color=f"C{yi % 10}")
        ax.axvline(SOLVED_RETURN, color="tab:red", ls="--", lw=1)
        ax.set(title=name.upper() if name == "iqm" else name, xlim=(0, 520), xlabel="final greedy eval return")
        ax.grid(alpha=0.3)
    axes[0].set_yticks(y, [e["label"] for e in entries], fontsize=7)
    axes[0].set_ylim(len(entries) - 0.5, -0.5)  # first entry on top, half a row of room around each
    fig.suptitle("final return over runs (95% bootstrap CIs)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def profiles_plot(path: str, result: dict) -> None:
    """Performance profiles: the fraction of runs whose final return is above each threshold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    prof = result["profile"]
    fig, ax = plt.subplots(figsize=(6.5, 4), dpi=110)
    for label, fractions in prof["fraction_above"].items():
        ax.step(prof["thresholds"], fractions, where="post", label=label)
    ax.axvline(SOLVED_RETURN, color="tab:red", ls="--", lw=1)
    ax.set(xlabel="final greedy eval return threshold τ", ylabel="fraction of runs with return > τ", ylim=(-0.02, 1.02))
    ax.legend(fontsize=7, loc="lower left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
