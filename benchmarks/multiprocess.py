"""Env steps/s of `cartpole-jax train`: P processes × 1 CPU device on 127.0.0.1 vs 1 process × P devices.

    python benchmarks/multiprocess.py --seeds 32 --processes 2      # the numbers in docs/multihost.md
    python benchmarks/multiprocess.py --seeds 8 --processes 4 --set total_env_steps=4000

Each layout runs once (env steps/s count training only, not start-up or compiling); on a shared
machine the numbers move with the load. Per-seed params_sha256 must agree between the two layouts (a run's bits do not depend
on the device layout); the script says so or fails.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_job(out: Path, argv: list[str], processes: int, devices_per_process: int, env: dict, timeout: float) -> float:
    """Run `cartpole-jax train argv` as `processes` processes; the wall seconds."""
    port = free_port()
    env = {**env, "JAX_NUM_CPU_DEVICES": str(devices_per_process)}
    procs = []
    t0 = time.perf_counter()
    for i in range(processes):
        job = ["--coordinator", f"127.0.0.1:{port}", "--num-processes", str(processes), "--process-id", str(i)] if processes > 1 else []
        cmd = [sys.executable, "-m", "cartpole_jax", "train", *argv, "--devices", "all", "--quiet", "--force", "--out", str(out), *job]
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    for p in procs:
        _, err = p.communicate(timeout=timeout)
        if p.returncode != 0:
            raise SystemExit(f"a process exited {p.returncode}: {err[-2000:]}")
    return time.perf_counter() - t0


def measure(root: Path, argv: list[str], processes: int, env: dict, timeout: float) -> dict:
    """Both layouts, each run once; their summary numbers."""
    rows = {}
    for name, (procs, per) in {"1 process": (1, processes), f"{processes} processes": (processes, 1)}.items():
        out = root / name.replace(" ", "-")
        wall = run_job(out, argv, procs, per, env, timeout)
        s = json.loads((out / "summary.json").read_text())
        rows[name] = {"devices": s["num_devices"], "wall_s": round(wall, 1), "train_s": s["train_seconds"],
                      "env_steps_per_s": s["env_steps_per_second"], "sha": [r["params_sha256"] for r in s["runs"]]}
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=32)
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--timeout", type=float, default=1800, help="seconds one job may take")
    args = p.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "XLA_FLAGS", "JAX_NUM_CPU"))}
    env["JAX_PLATFORMS"] = "cpu"
    argv = ["--seeds", str(args.seeds), *[a for s in args.sets for a in ("--set", s)]]
    with tempfile.TemporaryDirectory(prefix="cartpole-jax-mp-") as root:
        env.setdefault("CARTPOLE_JAX_CACHE", str(Path(root) / "cache"))
        rows = measure(Path(root), argv, args.processes, env, args.timeout)
    shas = {name: row.pop("sha") for name, row in rows.items()}
    for name, row in rows.items():
        print(f"{name:>12}: {row}")
    same = len({tuple(v) for v in shas.values()}) == 1
    print(f"per-seed params_sha256 equal across layouts: {same}")
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
