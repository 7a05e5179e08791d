"""Statistics over seeds: IQM, median and mean with 95% bootstrap CIs, solved fractions, probability of improvement.

scipy.stats does the arithmetic (trim_mean, bootstrap, binomtest's Wilson interval, rankdata). rliable
computes the same estimates (Agarwal et al., 2021) but its dependency `arch` 7.2 fails to import under
pandas 3, and scipy is maintained and small next to jax. The bootstrap is the percentile one, as in
rliable: BCa is undefined on samples with ties such as every seed at 500, where it returns NaN. The
bootstrap seed is fixed, so the same runs always give the same intervals.

    >>> round(iqm([1, 2, 3, 4, 5, 6, 7, 8]), 3)
    4.5
    >>> estimate([500.0] * 4)["iqm"]
    {'value': 500.0, 'ci': [500.0, 500.0]}
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .config import SOLVED_RETURN

CONFIDENCE = 0.95
RESAMPLES = 10_000
SEED = 0  # fixed bootstrap seed: reproducible outputs
METHOD = (f"{CONFIDENCE:.0%} percentile bootstrap CI over runs ({RESAMPLES} resamples, seed {SEED}); "
          "solved fraction: Wilson score interval; IQM: mean of the middle 50% (scipy.stats.trim_mean 0.25)")


def iqm(x, axis: int = -1):
    """Interquartile mean: the mean after cutting 25% of the values from each end."""
    from scipy.stats import trim_mean

    return trim_mean(x, 0.25, axis=axis)


ESTIMATORS: dict[str, Callable] = {"iqm": iqm, "median": np.median, "mean": np.mean}


def interval(samples: Sequence[Sequence[float]], statistic: Callable) -> list[float]:
    """The CI of statistic(*samples) (vectorized, takes axis=); a point where no resample can differ."""
    from scipy.stats import bootstrap

    arrays = [np.asarray(s, dtype=float) for s in samples]
    point = float(statistic(*arrays, axis=-1))
    if all(len(a) < 2 or np.ptp(a) == 0 for a in arrays):
        return [point, point]  # every resample equals the sample: the interval is the point itself
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy's DegenerateDataWarning: handled by the NaN check below
        ci = bootstrap(arrays, statistic, n_resamples=RESAMPLES, confidence_level=CONFIDENCE, method="percentile",
                       vectorized=True, axis=-1, rng=np.random.default_rng(SEED)).confidence_interval
    low, high = float(ci.low), float(ci.high)
    return [point, point] if not (np.isfinite(low) and np.isfinite(high)) else [low, high]


def estimate(values: Sequence[float]) -> dict[str, Any]:
    """{"n", and per estimator {"value", "ci"}}; values None where there is no value."""
    x = np.asarray([v for v in values if v is not None], dtype=float)
    out: dict[str, Any] = {"n": len(x)}
    for name, f in ESTIMATORS.items():
        if len(x) == 0:
            out[name] = {"value": None, "ci": [None, None]}
        else:
            out[name] = {"value": _round(f(x, axis=-1)), "ci": [_round(c) for c in interval([x], f)]}
    return out


def solved_fraction(solved: int, n: int) -> dict[str, Any]:
    """The fraction solved/n with its Wilson score interval (sensible at 0/n and n/n, unlike the bootstrap's point)."""
    from scipy.stats import binomtest

    if n == 0:
        return {"n": 0, "solved": 0, "value": None, "ci": [None, None]}
    ci = binomtest(solved, n).proportion_ci(CONFIDENCE, method="wilson")
    return {"n": n, "solved": solved, "value": _round(solved / n), "ci": [_round(ci.low), _round(ci.high)]}


def run_statistics(runs: Sequence[dict]) -> dict[str, Any]:
    """Statistics over summary.json's per-run entries: final return, steps to first solve, solved at the end."""
    return {
        "method": METHOD,
        "final_eval_return": estimate([r["final_eval_return_mean"] for r in runs]),
        "first_solved_env_step": {
            **estimate([r["first_solved_env_step"] for r in runs]),
            "over": f"only the runs that reached a greedy mean >= {SOLVED_RETURN:g} at some evaluation (n of them)",
        },
        "solved_at_end": solved_fraction(sum(bool(r["solved"]) for r in runs), len(runs)),
    }


def probability_of_improvement(x: Sequence[float], y: Sequence[float]) -> dict[str, Any]:
    """P(X > Y) + 0.5 P(X = Y) for a random run of each, with its bootstrap CI (x and y resampled independently)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    return {"value": _round(_improvement(x, y)), "ci": [_round(c) for c in interval([x, y], _improvement)]}


def _improvement(x, y, axis: int = -1):
    """The Mann-Whitney U of x over y divided by len(x) * len(y), from the joint average ranks."""
    from scipy.stats import rankdata

    n, m = x.shape[axis], y.shape[axis]
    ranks = rankdata(np.concatenate([x, y], axis=axis), axis=axis)
    u = np.take(ranks, np.arange(n), axis=axis).sum(axis=axis) - n * (n + 1) / 2
    return u / (n * m)


def profile(values: Sequence[float], thresholds: Sequence[float]) -> list[float]:
    """Performance profile: the fraction of runs whose value is above each threshold."""
    x = np.asarray(values, dtype=float)
    return [float(np.mean(x > t)) if len(x) else 0.0 for t in thresholds]


FLAT = [(metric, est) for metric in ("final_eval_return", "first_solved_env_step") for est in ("iqm", "median", "mean")]


def flat_columns() -> list[str]:
    """Column names of `flat_row`: one value and two CI bounds per metric and estimator, then the solved fraction."""
    cols = [f"{m}_{e}{suffix}" for m, e in FLAT for suffix in ("", "_ci_low", "_ci_high")]
    return ["num_runs", "num_solved_ever", *cols, "solved_at_end_fraction", "solved_at_end_ci_low", "solved_at_end_ci_high"]


def flat_row(stats: dict[str, Any]) -> list[Any]:
    """`run_statistics` output as one CSV row (None for no value), columns as in `flat_columns`."""
    row = [stats["final_eval_return"]["n"], stats["first_solved_env_step"]["n"]]
    for m, e in FLAT:
        row += [stats[m][e]["value"], *stats[m][e]["ci"]]
    s = stats["solved_at_end"]
    return [*row, s["value"], *s["ci"]]


def show_ci(d: dict, fmt: str) -> str:
    """`value [low, high]` in `fmt`, or '-' where there is no value."""
    return "-" if d["value"] is None else f"{d['value']:{fmt}} [{d['ci'][0]:{fmt}}, {d['ci'][1]:{fmt}}]"


def describe(stats: dict[str, Any] | None) -> list[str]:
    """Lines for the final table: each estimate with its CI; a sweep's adds one line per grid point."""
    if not stats:
        return []
    if "points" in stats:
        return [f"{_label(p['grid'])}: final return IQM {show_ci(p['final_eval_return']['iqm'], '.1f')}, steps to solve IQM "
                f"{show_ci(p['first_solved_env_step']['iqm'], ',.0f')} ({p['first_solved_env_step']['n']} solved), solved at the end "
                f"{p['solved_at_end']['solved']}/{p['solved_at_end']['n']}" for p in stats["points"]]
    f, s, end = stats["final_eval_return"], stats["first_solved_env_step"], stats["solved_at_end"]
    return [
        f"final eval return over {f['n']} runs: IQM {show_ci(f['iqm'], '.1f')}  median {show_ci(f['median'], '.1f')}  "
        f"mean {show_ci(f['mean'], '.1f')}  ({CONFIDENCE:.0%} bootstrap CIs)",
        f"env steps to first solve over the {s['n']} runs that solved: IQM {show_ci(s['iqm'], ',.0f')}  "
        f"median {show_ci(s['median'], ',.0f')}  mean {show_ci(s['mean'], ',.0f')}",
        f"solved at the end: {end['solved']}/{end['n']} = {show_ci(end, '.2f')} (Wilson)",
    ]


def _label(grid: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in grid.items()) or "base config"


def _round(x) -> float | None:
    x = float(x)
    return round(x, 4) if np.isfinite(x) else None
