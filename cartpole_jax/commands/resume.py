"""`cartpole-jax resume RUN_DIR`: continue a run from its latest complete checkpoint.

The config, seeds and grid come from the run directory, so a resumed run ends with the same
per-seed results as one never interrupted; flags that could change them are refused.
"""

from __future__ import annotations

import argparse
import json
from contextlib import ExitStack
from pathlib import Path

from .. import distributed, tracking
from ..config import ConfigError, from_dict
from .train import train_into

# Flags of `train` a user might try here; each would make the resumed run a different run.
REFUSED = ("--set", "--config", "--preset", "--seeds", "--seed", "--devices", "--batching", "--out", "--force")


def add_parser(sub) -> None:
    p = sub.add_parser("resume", help="continue a run directory from its latest checkpoint")
    p.add_argument("run_dir", metavar="RUN_DIR", help="directory written by `cartpole-jax train`")
    p.add_argument("--quiet", action="store_true", help="no progress bar or table")
    tracking.add_flag(p, resume=True)
    distributed.add_flags(p)  # a multi-process run resumes as the same job: every process runs `resume`
    for flag in REFUSED:
        p.add_argument(flag, dest="refused_" + flag[2:], nargs="?", const=True, default=None, help=argparse.SUPPRESS)


def main(args) -> int:
    given = [flag for flag in REFUSED if getattr(args, "refused_" + flag[2:]) is not None]
    if given:
        raise ConfigError(
            f"resume takes no {given[0]}: it continues the run with the config, seeds and devices it was started with "
            "(start a new run with `cartpole-jax train` to change them)"
        )

    distributed.setup(args)
    run_dir = Path(args.run_dir)
    log = tracking.parse(getattr(args, "log", None) or tracking.recorded(run_dir))  # by default the loggers the run already used
    cfg = load_run_config(run_dir)[1]
    with ExitStack() as held:
        # Process 0 alone locks RUN_DIR and checks it; then every process reads the checkpoint (read only).
        distributed.on_writer(_claim, run_dir, held)
        return continue_run(run_dir, cfg, args.quiet, log)


def _claim(run_dir: Path, held: ExitStack) -> None:
    """Lock RUN_DIR until `held` closes, and refuse a finished run."""
    from .. import runlock

    held.enter_context(runlock.hold(run_dir, "cartpole-jax resume"))
    if finished(run_dir):
        raise ConfigError(f"{run_dir}: the run is already finished (its results are in summary.json); nothing to resume")


def _resume(run_dir: Path, cfg, state, done: int, meta: dict, quiet: bool, log: tuple[str, ...] = ()) -> int:
    from .. import checkpoint

    meta = checkpoint.make_meta(cfg, meta["preset"], meta["seeds"], meta["grid"], meta["devices"], meta.get("batching", "auto"))
    if not quiet and distributed.is_writer():
        print(f"resuming {run_dir} after chunk {done}/{cfg.num_chunks}")
    return train_into(run_dir, cfg, meta, quiet, resume=(state, done), log=log)


def verdict(run_dir: Path, preset: str, cfg, seeds: list[int], batching: str) -> str:
    """`train --resume-if-exists`: "finished" or "resume" if RUN_DIR holds this very run (same preset, config,
    seeds and batching), else "start". Call with RUN_DIR's lock held; reads only the checkpoint's metadata."""
    from .. import checkpoint

    if not same_run(run_dir, preset, cfg):
        return "start"
    try:
        summary = finished(run_dir)
    except ConfigError:
        return "start"
    if summary is not None:
        return "finished" if [r["seed"] for r in summary.get("runs", [])] == seeds else "start"
    meta = checkpoint.latest_meta(run_dir)
    if meta is None or meta["seeds"] != seeds or meta.get("batching", "auto") != batching:
        return "start"
    return "resume"


def same_run(run_dir: Path, preset: str, cfg) -> bool:
    """Whether RUN_DIR holds a run of this preset and config (which --resume-if-exists may take over)."""
    try:
        return load_run_config(run_dir) == (preset, cfg)
    except ConfigError:
        return False


def continue_run(run_dir: Path, cfg, quiet: bool, log: tuple[str, ...] = ()) -> int:
    """Continue RUN_DIR from its latest checkpoint (`resume`, or `train --resume-if-exists` after `verdict`
    said "resume"); every process reads it."""
    from .. import checkpoint

    state, done, meta = checkpoint.restore(run_dir, cfg)
    return _resume(run_dir, cfg, state, done, meta, quiet, log)


def finished(run_dir: Path) -> dict | None:
    """RUN_DIR's summary.json if it records a run that reached its last env step without failing, else None."""
    path = run_dir / "summary.json"
    if not path.is_file():
        return None
    try:
        summary = json.loads(path.read_text())
        done = summary.get("failed") is None and summary["env_steps_done"] == summary["total_env_steps"]
    except (OSError, UnicodeDecodeError, ValueError, AttributeError, KeyError, TypeError) as err:
        raise ConfigError(f"{path}: not a readable run summary ({err.__class__.__name__}); move it away to resume") from None
    return summary if done else None


def load_run_config(run_dir: Path):
    """(preset, Config) from RUN_DIR/config.json, or a one-line ConfigError."""
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: no such run directory")
    path = run_dir / "config.json"
    if not path.is_file():
        raise ConfigError(f"{run_dir}: not a run directory (no config.json)")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise ConfigError(f"{path}: not a readable run config ({err.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: not a run config (a JSON {type(data).__name__}, not an object)")
    preset = data.pop("preset", "custom")
    try:
        return preset, from_dict(data)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    except (TypeError, ValueError) as err:  # a value of a type no config field takes
        raise ConfigError(f"{path}: not a run config ({err.__class__.__name__})") from None
