"""What the training loop costs besides its gradient steps, and the loop/bound ratio that leaves at best.

    python benchmarks/loop_overhead.py [--preset purejaxrl] [--repeats 2]

Times the preset's compiled loop with learning pushed to the last vector step (env, actor, replay
writes, schedule branches: everything but sampling and gradient steps) and its update-only bound,
one seed on one device, and prints both per vector step. If the two simply added up, the full loop
could reach at most bound / (bound + loop) of the bound's speed; sampling the replay batch comes on top.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def loop_without_updates(preset: str) -> float:
    """Seconds per vector step of the preset's loop when no gradient step is ever due."""
    from benchmarks.training import clear_compiled
    from cartpole_jax.config import resolve
    from cartpole_jax.driver import train_runs

    _, base = resolve(preset, None, [])
    steps = 20_000 * base.num_envs
    sets = [f"total_env_steps={steps}", f"learning_starts={steps - base.num_envs}", f"eval_every={steps}", "eval_episodes=1",
            "num_chunks=1", "checkpoint_every=0"]
    _, cfg = resolve(preset, None, sets)
    result = train_runs(cfg, [0], devices=1)
    clear_compiled()
    return result.train_seconds / cfg.num_vector_steps


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="purejaxrl")
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args(argv)
    from benchmarks import training

    for _ in range(args.repeats):
        loop = loop_without_updates(args.preset)
        bound = training.bench_update_bound(args.preset, 1, 10_000, 3)
        training.clear_compiled()
        update_per_vector_step = bound["num_envs"] / bound["steps_per_second"]  # one seed: median env steps/s
        print(f"{args.preset}: loop without gradient steps {loop * 1e6:.1f} us per vector step; gradient steps "
              f"{update_per_vector_step * 1e6:.1f} us per vector step; additive ceiling of loop/bound "
              f"{update_per_vector_step / (update_per_vector_step + loop):.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
