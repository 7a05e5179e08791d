"""`cartpole-jax render RUN_DIR`: an animated GIF of one greedy episode of a trained policy."""

from __future__ import annotations

from pathlib import Path

from ..config import ConfigError
from ..policy import load_policy
from .common import positive_int
from .evaluate import policy_path


def add_parser(sub) -> None:
    p = sub.add_parser("render", help="draw a greedy episode as an animated GIF")
    p.add_argument("run_dir", metavar="RUN_DIR", help="run directory (or a policy.npz file)")
    p.add_argument("--seed-index", type=positive_int("--seed-index", 0), default=0, help="which run's policy (default 0)")
    p.add_argument("--seed", type=positive_int("--seed", 0), default=0, help="seed of the episode's initial state (default 0)")
    p.add_argument("--out", metavar="FILE", default=None, help="GIF to write (default RUN_DIR/pole.gif)")
    p.add_argument("--max-steps", type=positive_int("--max-steps"), default=500, help="cap on the steps drawn (default 500)")


def main(args) -> int:
    from ..host import devices
    from ..render import render_gif

    path = policy_path(args.run_dir)
    policy = load_policy(path, args.seed_index)
    devices()  # a backend that cannot start fails here in one line
    out = Path(args.out) if args.out else path.parent / "pole.gif"
    if not out.parent.is_dir():
        raise ConfigError(f"--out {out}: directory {out.parent} does not exist")
    frames = render_gif(policy, out, args.seed, args.max_steps)
    print(f"{out}: {frames} frames ({frames - 1} steps, seed {policy.seed})")
    return 0
