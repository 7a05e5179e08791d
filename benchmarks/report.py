"""throughput.md tables, the target ratios, and the PNG plots, all from the JSON records."""

from __future__ import annotations

import json
from pathlib import Path

TARGETS = {
    "env_vs_gymnasium_vector": 2.0,  # issue 6: cartpole_jax over gymnasium's vector env at 1024 envs
    "train_vs_update_bound": 0.95,  # issue 6: purejaxrl preset, full loop over its gradient steps alone
    "seed_tutorial_steps_per_second": 800.0,  # issue 3: 50x the Keras tutorial's ~16 env steps/s
}


def find(records: list[dict], **match) -> dict | None:
    for r in records:
        if all(r.get(k) == v for k, v in match.items()):
            return r
    return None


def _ratio(name: str, num: dict | None, den: dict | None, target: float | None, **extra) -> dict | None:
    if num is None or den is None:
        return None
    value = num["steps_per_second"] / den["steps_per_second"]
    return {"name": name, "value": value, "target": target, "met": None if target is None else value >= target, **extra}


def ratios(records: list[dict]) -> list[dict]:
    """The issue's headline ratios, for every size where both sides were measured."""
    out = [_ratio("env_vs_gymnasium_vector", find(records, kind="env", impl="cartpole_jax", num_envs=1024),
                  find(records, kind="env", impl="gymnasium_vector", num_envs=1024), TARGETS["env_vs_gymnasium_vector"], num_envs=1024)]
    for r in records:
        if r["kind"] == "train":
            bound = find(records, kind="update_bound", preset=r["preset"], num_seeds=r["num_seeds"])
            target = TARGETS["train_vs_update_bound"] if r["preset"] == "purejaxrl" else None
            out.append(_ratio("train_vs_update_bound", r, bound, target, preset=r["preset"], num_seeds=r["num_seeds"]))
        if r["kind"] == "train" and r["num_seeds"] == 1:
            loop = find(records, kind="python_loop", preset=r["preset"])
            out.append(_ratio("compiled_vs_python_loop", r, loop, None, preset=r["preset"], num_seeds=1))
    tutorial = find(records, kind="train", preset="seed-tutorial", num_seeds=1)
    if tutorial:
        value, target = tutorial["steps_per_second"], TARGETS["seed_tutorial_steps_per_second"]
        out.append({"name": "seed_tutorial_steps_per_second", "value": value, "target": target, "met": value >= target})
    return [r for r in out if r is not None]


def load_external(path: str | None) -> list[dict]:
    if not path or not Path(path).exists():
        return []
    return json.loads(Path(path).read_text())


def _fmt(x: float | None, digits: int = 0) -> str:
    if x is None:
        return "–"
    return f"{x:,.{digits}f}" if abs(x) >= 10 or digits else f"{x:.3g}"


def _cell(r: dict | None) -> str:
    if r is None:
        return "–"
    return f"{_fmt(r['steps_per_second'])} ({_fmt(r['min'])}–{_fmt(r['max'])})"


def env_table(result: dict) -> list[str]:
    from .envs import IMPLS

    recs = [r for r in result["records"] if r["kind"] == "env"]
    sizes = sorted({r["num_envs"] for r in recs} | {s["num_envs"] for s in result["skipped"] if s["kind"] == "env"})
    rows = ["| num_envs | " + " | ".join(IMPLS) + " |", "|---:|" + "---:|" * len(IMPLS)]
    for n in sizes:
        rows.append(f"| {n:,} | " + " | ".join(_cell(find(recs, impl=i, num_envs=n)) for i in IMPLS) + " |")
    return rows


def train_table(result: dict) -> list[str]:
    recs = result["records"]
    rows = ["| preset | seeds | full loop env steps/s (min–max) | compile s | update-only bound (min–max) | full / bound |",
            "|---|---:|---:|---:|---:|---:|"]
    for r in (r for r in recs if r["kind"] == "train"):
        bound = find(recs, kind="update_bound", preset=r["preset"], num_seeds=r["num_seeds"])
        ratio = f"{r['steps_per_second'] / bound['steps_per_second']:.2f}" if bound else "–"
        rows.append(f"| {r['preset']} | {r['num_seeds']} | {_cell(r)} | {r['compile_seconds']:.1f} | {_cell(bound)} | {ratio} |")
    return rows


def loop_table(result: dict) -> list[str]:
    recs = result["records"]
    rows = ["| preset | Python loop env steps/s (min–max) | compiled, 1 seed (min–max) | speed-up |", "|---|---:|---:|---:|"]
    for loop in (r for r in recs if r["kind"] == "python_loop"):
        comp = find(recs, kind="train", preset=loop["preset"], num_seeds=1)
        speed = f"{comp['steps_per_second'] / loop['steps_per_second']:.1f}×" if comp else "–"
        rows.append(f"| {loop['preset']} | {_cell(loop)} | {_cell(comp)} | {speed} |")
    return rows


def targets_table(result: dict) -> list[str]:
    rows = ["| ratio | where | value | target | met |", "|---|---|---:|---:|---|"]
    for r in result["ratios"]:
        where = ", ".join(f"{k}={r[k]}" for k in ("preset", "num_seeds", "num_envs") if k in r)
        target = "–" if r["target"] is None else f"≥ {r['target']:g}"
        met = {True: "yes", False: "**no**", None: ""}[r["met"]]
        rows.append(f"| {r['name']} | {where} | {r['value']:,.2f} | {target} | {met} |")
    return rows


def external_table(result: dict) -> list[str]:
    if not result["external"]:
        return []
    rows = ["", "## Measured outside this script", "",
            "| what | seeds | env steps/s (min–max) | measured on | method |", "|---|---:|---:|---|---|"]
    for e in result["external"]:
        rows.append(f"| {e['what']} | {e['num_seeds']} | {_fmt(e['steps_per_second'])} ({_fmt(e['min'])}–{_fmt(e['max'])}) "
                    f"| {e['machine']} | {e['method']} |")
    return rows


def markdown(result: dict) -> str:
    m = result["meta"]
    head = [
        "# Throughput", "",
        f"{m['device_kind']} × {m['device_count']} ({m['backend']}), CPU {m['cpu_model']} with {m['cpu_cores_usable']} usable cores; "
        f"jax {m['versions']['jax']}, gymnax {m['versions']['gymnax']}, gymnasium {m['versions']['gymnasium']}; "
        f"{'quick' if m['quick'] else 'full'} run of {m['total_seconds']:.0f} s started {m['started']}. "
        "Medians of the repeats with (min–max); method in throughput.json.", "",
        "## Targets", "", *targets_table(result), "",
        "## Env only: env steps/s, random actions, auto-reset", "", *env_table(result), "",
        "## Training: env steps/s over all seeds", "", *train_table(result), "",
        "## What compiling buys: the same DQN from a Python loop", "", *loop_table(result),
        *external_table(result),
    ]
    if result["skipped"]:
        head += ["", "## Skipped", ""] + [f"- {s}" for s in result["skipped"]]
    return "\n".join(head) + "\n"


def _line_plot(ax, series: dict[str, list[tuple[float, float]]], xlabel: str) -> None:
    for label, points in series.items():
        points = sorted(points)
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("env steps / s")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()


def plots(result: dict, out: Path) -> None:
    """env_throughput.png (per impl vs num_envs) and train_throughput.png (per preset vs seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs = result["records"]
    env_series: dict[str, list] = {}
    for r in (r for r in recs if r["kind"] == "env"):
        env_series.setdefault(r["impl"], []).append((r["num_envs"], r["steps_per_second"]))
    train_series: dict[str, list] = {}
    for r in (r for r in recs if r["kind"] in ("train", "update_bound")):
        label = f"{r['preset']} {'full loop' if r['kind'] == 'train' else 'update-only bound'}"
        train_series.setdefault(label, []).append((r["num_seeds"], r["steps_per_second"]))
    for name, series, xlabel in (("env_throughput.png", env_series, "num_envs"), ("train_throughput.png", train_series, "seeds")):
        fig, ax = plt.subplots(figsize=(6.5, 4.5))
        _line_plot(ax, series, xlabel)
        ax.set_title(f"{name.split('_')[0]} throughput on {result['meta']['device_kind']}")
        fig.tight_layout()
        fig.savefig(out / name, dpi=120)
        plt.close(fig)
