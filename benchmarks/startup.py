"""Start-up times a user sees, each in a fresh process: --help, config, a bad --set, and
`train --seeds 8` cold (CARTPOLE_JAX_CACHE=off) and with the compile cache.

    python benchmarks/startup.py [--repeats 3] [--seeds 8] [--out FILE] [--quick]

Commands take turns, so a machine whose speed drifts slows them alike; medians are reported. The
train runs read compile, train, startup and outputs seconds from their summary.json where it has them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CLI = [sys.executable, "-m", "cartpole_jax"]
SUMMARY_KEYS = ("compile_seconds", "train_seconds", "startup_seconds", "outputs_seconds")
TARGETS = {"help": 0.5, "config": 0.5, "bad_set": 0.5, "train_cold": 12.0, "train_cached": 9.0}


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    return time.perf_counter() - t0, done


def commands(seeds: int, quick: bool, work: Path) -> dict[str, tuple[list[str], dict[str, str]]]:
    """name -> (argv, extra env); train runs write into `work`."""
    tiny = ["--set", "total_env_steps=2000", "--set", "eval_every=1000", "--set", "buffer_size=1000"] if quick else []
    cache = str(work / "xla-cache")
    train = [*CLI, "train", "--seeds", str(seeds), "--quiet", *tiny]
    return {
        "help": ([*CLI, "--help"], {}),
        "config": ([*CLI, "config"], {}),
        "bad_set": ([*CLI, "train", "--set", "gamma=2", "--out", str(work / "never")], {}),
        "train_cold": ([*train, "--out", str(work / "cold")], {"CARTPOLE_JAX_CACHE": "off"}),
        "train_cached": ([*train, "--out", str(work / "cached")], {"CARTPOLE_JAX_CACHE": cache}),
    }


def measure(repeats: int, seeds: int, quick: bool) -> dict:
    rows: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cmds = commands(seeds, quick, work)
        warm = cmds["train_cached"]  # fill the cache once, so every cached repeat finds it
        subprocess.run([*warm[0][:-1], str(work / "warm")], env={**os.environ, **warm[1]}, capture_output=True, timeout=600)
        for _ in range(repeats):
            for name, (argv, extra) in cmds.items():
                for out in ("cold", "cached"):
                    subprocess.run(["rm", "-rf", str(work / out)])
                wall, done = timed(argv, {**os.environ, **extra})
                row = {"wall_seconds": round(wall, 3), "exit_code": done.returncode}
                summary = work / name.removeprefix("train_") / "summary.json"
                if name.startswith("train_") and summary.is_file():
                    data = json.loads(summary.read_text())
                    row.update({k: data[k] for k in SUMMARY_KEYS if k in data})
                rows.setdefault(name, []).append(row)
    return rows


def report(rows: dict, args) -> dict:
    from benchmarks.timing import machine

    medians = {name: statistics.median(r["wall_seconds"] for r in runs) for name, runs in rows.items()}
    return {
        "command": " ".join(sys.argv),
        "repeats": args.repeats, "seeds": args.seeds, "quick": args.quick,
        "median_wall_seconds": {k: round(v, 3) for k, v in medians.items()},
        "targets_seconds": TARGETS,
        "meets_targets": None if args.quick else {k: medians[k] <= t for k, t in TARGETS.items()},
        "runs": rows,
        "machine": machine(),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--quick", action="store_true", help="a tiny training run (tests)")
    p.add_argument("--out", metavar="FILE")
    args = p.parse_args(argv)
    result = report(measure(args.repeats, args.seeds, args.quick), args)
    for name, wall in result["median_wall_seconds"].items():
        print(f"{name:14s} median {wall:7.2f} s   (target {TARGETS[name]} s)")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
