"""Start-up times a user sees, each in a fresh process: --help, config, a bad --set, and
`train --seeds 8` cold (CARTPOLE_JAX_CACHE=off) and with the compile cache.

    python benchmarks/startup.py [--repeats 3] [--seeds 8] [--out FILE] [--quick]
    python benchmarks/startup.py --against CHECKOUT [--repeats 10] ...

Commands take turns, so a machine whose speed drifts slows them alike; medians are reported. The
train runs read compile, train, startup and outputs seconds from their summary.json where it has them;
"compile_cold" is the cold runs' median compile_seconds.

--against compares the cold train run with another checkout's (`git worktree add /tmp/base HEAD~1`),
in pairs taken in turns: on a shared 2-core box the speed drifts by more within minutes than a change
of a few tenths of a second moves it, and each pair's difference cancels most of that drift.
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
# Medians of wall seconds, and "compile_cold" of the cold runs' compile_seconds. The train walls are
# targets for `--seeds 8`; the compile's holds at any seed count (issue 21: at 8 and at 64).
TARGETS = {"help": 0.5, "config": 0.5, "bad_set": 0.5, "train_cold": 12.0, "train_cached": 9.0, "compile_cold": 4.0}
WALL_TARGET_SEEDS = 8


def timed_row(argv: list[str], env: dict[str, str], summary: Path | None = None, cwd: Path | None = None) -> dict:
    """Wall seconds and exit code of one command in a fresh process, plus SUMMARY_KEYS from the
    summary.json it wrote, if any."""
    t0 = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    row = {"wall_seconds": round(time.perf_counter() - t0, 3), "exit_code": done.returncode}
    if summary is not None and summary.is_file():
        data = json.loads(summary.read_text())
        row.update({k: data[k] for k in SUMMARY_KEYS if k in data})
    return row


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
                summary = work / name.removeprefix("train_") / "summary.json" if name.startswith("train_") else None
                rows.setdefault(name, []).append(timed_row(argv, {**os.environ, **extra}, summary))
    return rows


def measure_pairs(repeats: int, seeds: int, quick: bool, against: Path) -> list[dict[str, dict]]:
    """`repeats` pairs of cold train runs, this checkout's and `against`'s, each with its package first
    on the path (run from a scratch folder, so the working directory shadows neither)."""
    ours = Path(__file__).resolve().parent.parent
    pairs = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        argv, extra = commands(seeds, quick, work)["train_cold"]
        for i in range(repeats):
            pair = {}
            sides = [("ours", ours), ("against", against)]
            for side, root in sides if i % 2 == 0 else sides[::-1]:  # each goes first as often: no bias from going second
                subprocess.run(["rm", "-rf", str(work / "cold")])
                env = {**os.environ, **extra, "PYTHONPATH": str(root)}
                pair[side] = timed_row(argv, env, work / "cold" / "summary.json", cwd=work)
            pairs.append(pair)
    return pairs


def paired(pairs: list[dict[str, dict]], key: str) -> dict:
    """Median of ours - against over the pairs where both have `key`, and in how many ours was lower."""
    both = [(p["ours"][key], p["against"][key]) for p in pairs if key in p["ours"] and key in p["against"]]
    if not both:
        return {"median_difference": None, "ours_lower": 0, "pairs": 0}
    diffs = [a - b for a, b in both]
    return {"median_difference": round(statistics.median(diffs), 3), "ours_lower": sum(d < 0 for d in diffs), "pairs": len(both),
            "ours_median": round(statistics.median(a for a, _ in both), 3),
            "against_median": round(statistics.median(b for _, b in both), 3)}


def report_pairs(pairs: list[dict[str, dict]], against: Path, args) -> dict:
    from benchmarks.timing import commit, machine

    return {
        "command": " ".join(sys.argv),
        "repeats": args.repeats, "seeds": args.seeds, "quick": args.quick,
        "against": {"path": str(against), "commit": commit(against)},
        "paired": {key: paired(pairs, key) for key in ("wall_seconds", "compile_seconds")},
        "pairs": pairs,
        "machine": machine(),
    }


def report(rows: dict, args) -> dict:
    from benchmarks.timing import machine

    medians = {name: statistics.median(r["wall_seconds"] for r in runs) for name, runs in rows.items()}
    parts = {name: {key: round(statistics.median(r[key] for r in runs), 3) for key in SUMMARY_KEYS if all(key in r for r in runs)}
             for name, runs in rows.items() if name.startswith("train_")}
    if "compile_seconds" in parts.get("train_cold", {}):
        medians["compile_cold"] = parts["train_cold"]["compile_seconds"]
    targets = {k: t for k, t in TARGETS.items() if k in medians and (args.seeds == WALL_TARGET_SEEDS or not k.startswith("train_"))}
    return {
        "command": " ".join(sys.argv),
        "repeats": args.repeats, "seeds": args.seeds, "quick": args.quick,
        "median_seconds": {k: round(v, 3) for k, v in medians.items()},
        "median_summary_seconds": parts,
        "targets_seconds": targets,
        "meets_targets": None if args.quick else {k: medians[k] <= t for k, t in targets.items()},
        "runs": rows,
        "machine": machine(),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--quick", action="store_true", help="a tiny training run (tests)")
    p.add_argument("--out", metavar="FILE")
    p.add_argument("--against", metavar="CHECKOUT", type=Path, help="pairs of cold train runs with another checkout's package")
    args = p.parse_args(argv)
    if args.against is not None:
        if not (args.against / "cartpole_jax" / "__init__.py").is_file():
            p.error(f"--against must be a checkout of this project (no cartpole_jax/ in {args.against})")
        result = report_pairs(measure_pairs(args.repeats, args.seeds, args.quick, args.against.resolve()), args.against, args)
        for key, stats in result["paired"].items():
            print(f"{key:16s} ours - against: median {stats['median_difference']} s, ours lower in {stats['ours_lower']}/{stats['pairs']}")
    else:
        result = report(measure(args.repeats, args.seeds, args.quick), args)
        for name, seconds in result["median_seconds"].items():
            target = result["targets_seconds"].get(name)
            print(f"{name:14s} median {seconds:7.2f} s" + (f"   (target {target} s)" if target is not None else ""))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
