"""`cartpole-jax resume RUN_DIR`: continue a run from its latest complete checkpoint.

The config, seeds and grid come from the run directory, so a resumed run ends with the same
per-seed results as one never interrupted; flags that could change them are refused.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..config import ConfigError, from_dict
from .train import train_into

# Flags of `train` a user might try here; each would make the resumed run a different run.
REFUSED = ("--set", "--config", "--preset", "--seeds", "--seed", "--devices", "--batching", "--out", "--force")


def add_parser(sub) -> None:
    p = sub.add_parser("resume", help="continue a run directory from its latest checkpoint")
    p.add_argument("run_dir", metavar="RUN_DIR", help="directory written by `cartpole-jax train`")
    p.add_argument("--quiet", action="store_true", help="no progress bar or table")
    for flag in REFUSED:
        p.add_argument(flag, dest="refused_" + flag[2:], nargs="?", const=True, default=None, help=argparse.SUPPRESS)


def main(args) -> int:
    given = [flag for flag in REFUSED if getattr(args, "refused_" + flag[2:]) is not None]
    if given:
        raise ConfigError(
            f"resume takes no {given[0]}: it continues the run with the config, seeds and devices it was started with "
            "(start a new run with `cartpole-jax train` to change them)"
        )
    from .. import checkpoint

    run_dir = Path(args.run_dir)
    cfg = load_run_config(run_dir)[1]
    state, done, meta = checkpoint.restore(run_dir, cfg)
    meta = checkpoint.make_meta(cfg, meta["preset"], meta["seeds"], meta["grid"], meta["devices"], meta.get("batching", "auto"))
    if not args.quiet:
        print(f"resuming {run_dir} after chunk {done}/{cfg.num_chunks}")
    return train_into(run_dir, cfg, meta, args.quiet, resume=(state, done))


def load_run_config(run_dir: Path):
    """(preset, Config) from RUN_DIR/config.json, or a one-line ConfigError."""
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: no such run directory")
    path = run_dir / "config.json"
    if not path.is_file():
        raise ConfigError(f"{run_dir}: not a run directory (no config.json)")
    try:
        data = json.loads(path.read_text())
        preset = data.pop("preset", "custom")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError) as err:
        raise ConfigError(f"{path}: not a readable run config ({err.__class__.__name__})") from None
    try:
        return preset, from_dict(data)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
