"""Throughput benchmarks: env-only, training, update-only bound, and the Python-loop baseline.

    python benchmarks/throughput.py [--quick] [--out benchmarks/results] [--device cpu|gpu]

Writes throughput.json (every record, the method, the machine), throughput.md (tables and the
issue's target ratios) and PNG plots under --out. Sizes are tried smallest first; when the time
budget runs short the rest are skipped and listed as such in the JSON, never extrapolated.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


@dataclass(frozen=True)
class Plan:
    """What to measure: sizes, repeats and the time each part may take."""

    env_sizes: tuple[int, ...]
    seeds: tuple[int, ...]
    train_presets: tuple[str, ...] = ("purejaxrl", "default")
    loop_presets: tuple[str, ...] = ("seed-tutorial", "purejaxrl")
    chunk_env_steps: tuple[tuple[str, int], ...] = (("purejaxrl", 10_000), ("default", 2_000), ("seed-tutorial", 1_000))
    repeats: int = 3
    env_target_seconds: float = 0.3
    budget_seconds: float = 1080.0
    overrides: dict | None = None  # config fields changed in every preset (tests shrink the networks)
    seed_cost_exponent: float = 1.0  # cost ~ seeds**this: runs are looped on CPU, batched on GPU

    def chunk(self, preset: str) -> int:
        return dict(self.chunk_env_steps)[preset]


SHORT_CHUNKS = (("purejaxrl", 5_000), ("default", 1_000), ("seed-tutorial", 500))
PLANS = {
    ("cpu", False): Plan(env_sizes=(1, 16, 256, 1024, 4096), seeds=(1, 4, 16, 64)),
    ("cpu", True): Plan(env_sizes=(1, 16, 256, 1024, 4096), seeds=(1, 4), env_target_seconds=0.1, budget_seconds=165.0,
                        chunk_env_steps=SHORT_CHUNKS),
    ("gpu", False): Plan(env_sizes=tuple(4**k for k in range(11)), seeds=(1, 4, 16, 64, 256, 1024), budget_seconds=400.0,
                         env_target_seconds=0.2, seed_cost_exponent=0.5),
    ("gpu", True): Plan(env_sizes=(1, 256, 4096, 1 << 16, 1 << 20), seeds=(1, 16, 256), budget_seconds=150.0,
                        env_target_seconds=0.1, seed_cost_exponent=0.5, chunk_env_steps=SHORT_CHUNKS),
}

METHOD = {
    "timing": "Each figure is the median over `repeats` timed repeats, with min and max; compiling (ahead of time, "
              "`compile_seconds`) and warm-up runs (`warmup_seconds`) are timed apart and excluded.",
    "env": "Random actions, auto-reset. JAX impls: a jitted lax.scan of `vector_steps_per_call` steps, called "
           "`calls_per_repeat` times per repeat, observations carried. gymnasium: env.step in a Python loop with NumPy "
           "random actions.",
    "train": "The preset unchanged except num_chunks (one chunk = `chunk_env_steps_per_seed` env steps per seed), run "
             "through cartpole_jax.driver.train_runs; the chunks up to learning_starts plus one are warm-up, each following "
             "chunk is one repeat, and the run stops after them. Steps/s count all seeds.",
    "update_bound": "learner.make_update with the preset's network, optimizer and batch size, in a lax.scan over "
                    "pre-generated synthetic batches, as many gradient steps per seed as one timed training chunk; "
                    "no env, buffer, actor, evaluation or hard target copies. Reported as env steps/s equivalent: the "
                    "chunk's env steps over the time of its gradient steps alone.",
    "python_loop": "One seed; gymnasium make_vec(vector_entry_point) with the preset's num_envs, a NumPy replay buffer, "
                   "jitted act and jitted learner update called from Python once per vector step (CleanRL/Keras "
                   "structure); timed over as many vector steps as one training chunk, after learning_starts.",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: under 3 minutes on 2 CPU cores")
    parser.add_argument("--out", default="benchmarks/results", help="folder for throughput.json, .md and PNGs")
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu", help="which backend, and its size grid")
    parser.add_argument("--budget", type=float, default=None, help="seconds the whole run may take (default: the plan's)")
    parser.add_argument("--rebuild", action="store_true", help="measure nothing: redo the .md and PNGs from --out's JSON")
    parser.add_argument("--external", default=str(Path(__file__).with_name("external_purejaxrl.json")),
                        help="JSON of externally measured rows to show in throughput.md, if present")
    return parser.parse_args(argv)


def select_backend(device: str) -> None:
    """Pin JAX to the asked backend before anything initialises it; fail clearly when it is missing."""
    import jax

    jax.config.update("jax_platforms", "cuda" if device == "gpu" else "cpu")
    try:
        jax.devices()
    except RuntimeError as err:
        raise SystemExit(f"--device {device}: no such JAX backend here ({err})") from None


def benchmark(plan: Plan, out: Path, *, budget_seconds: float | None = None, external: str | None = None,
              quick: bool = False, device: str = "cpu", log=print) -> dict:
    """Run every section of `plan` and write throughput.json, throughput.md and the plots to `out`."""
    from benchmarks import report, suite
    from benchmarks.timing import Budget, machine

    budget = Budget(budget_seconds or plan.budget_seconds)
    meta = {**machine(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "quick": quick, "device_arg": device,
            "argv": sys.argv[1:], "plan": dataclasses.asdict(plan)}

    def save(records: list[dict], skipped: list[dict]) -> dict:
        result = {"meta": {**meta, "total_seconds": round(budget.elapsed(), 1)}, "method": METHOD, "records": records,
                  "skipped": skipped, "ratios": report.ratios(records), "external": report.load_external(external)}
        out.mkdir(parents=True, exist_ok=True)
        (out / "throughput.json").write_text(json.dumps(result, indent=1, default=float) + "\n")
        (out / "throughput.md").write_text(report.markdown(result))
        return result

    result = save(*suite.run_all(plan, budget, log=log, save=save))
    report.plots(result, out)
    log(f"wrote {out}/throughput.json, throughput.md and plots in {budget.elapsed():.0f} s")
    return result


def rebuild(out: Path, external: str | None) -> None:
    """Rewrite throughput.md and the plots from throughput.json, with the external rows reloaded."""
    from benchmarks import report

    result = json.loads((out / "throughput.json").read_text())
    result["ratios"], result["external"] = report.ratios(result["records"]), report.load_external(external)
    (out / "throughput.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / "throughput.md").write_text(report.markdown(result))
    report.plots(result, out)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.rebuild:
        rebuild(Path(args.out), args.external)
        return 0
    select_backend(args.device)
    benchmark(PLANS[(args.device, args.quick)], Path(args.out), budget_seconds=args.budget, external=args.external,
              quick=args.quick, device=args.device, log=lambda s: print(s, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
