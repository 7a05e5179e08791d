"""Flags and host-side reporting shared by the commands."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from ..config import PRESETS, ConfigError, resolve
from ..runlock import NAME as LOCK_NAME


def positive_int(flag: str, lo: int = 1):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} must be an integer >= {lo}; got {text!r}") from None
        if value < lo:
            raise argparse.ArgumentTypeError(f"{flag} must be an integer >= {lo}; got {text!r}")
        return value

    return parse


def devices_arg(text: str):
    return "all" if text == "all" else positive_int("--devices")(text)


def add_config_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default=None, help=f"one of {', '.join(PRESETS)} (default: default, or the config file's preset)")
    p.add_argument("--config", metavar="FILE", help="TOML file of config keys")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE", help="override one key (repeatable)")


def add_seed_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seeds", type=positive_int("--seeds"), default=1, help="number of seeds (default 1)")
    p.add_argument("--seed", type=positive_int("--seed", 0), default=0, help="first seed (default 0)")
    p.add_argument("--devices", type=devices_arg, default=None,
                   help="N or all: shard runs across devices (default: on CPU one device per core, at most one per run; otherwise one)")
    p.add_argument("--batching", choices=("auto", "map", "vmap"), default="auto",
                   help="how runs share a device: map (CPU's auto) runs each as its own program, so a run's bits never "
                        "depend on the others; vmap (accelerators' auto) batches them, as accelerators need for speed, "
                        "but a run's bits then depend on how many runs share its device")


def add_out_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", metavar="DIR", help="run directory (default runs/PRESET-TIMESTAMP)")
    p.add_argument("--force", action="store_true", help="overwrite a non-empty --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar or table")


def check_out_dir(path: str | Path, force: bool, num_chunks: int = 1) -> Path:
    """Refuse a path that is a file, too long, or a non-empty directory without force; create nothing."""
    path = Path(path)
    check_path_length(path, _longest_file(num_chunks))  # first: a name too long makes even stat() fail
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--out {_short(path)}: exists and is not a directory")
    if path.is_dir() and any(p.name != LOCK_NAME for p in path.iterdir()) and not force:
        raise ConfigError(f"--out {_short(path)}: directory is not empty (pass --force to overwrite)")
    return path


def _longest_file(num_chunks: int) -> str:
    """The longest path a run writes under its directory: a file of a checkpoint orbax is still writing.

    With room to spare for tensorstore's temporary names, which are longer than the final ones.
    """
    return f"checkpoints/{num_chunks}.orbax-checkpoint-tmp-{'0' * 20}/state/ocdbt.process_0/d/{'0' * 32}.{'0' * 64}"


def check_path_length(path: Path, inside: str) -> None:
    """Refuse a directory under which `inside` would exceed the file system's name or path length limit.

    Found up front, not at the first checkpoint minutes later (orbax writes the longest paths).
    """
    full = path.absolute() / inside
    anchor = next((p for p in full.parents if _exists(p)), Path("/"))
    try:
        name_max, path_max = os.pathconf(anchor, "PC_NAME_MAX"), os.pathconf(anchor, "PC_PATH_MAX")
    except (OSError, ValueError):
        name_max, path_max = 255, 4096
    longest = max(path.absolute().parts, key=lambda part: len(os.fsencode(part)))
    if len(os.fsencode(longest)) > name_max:
        raise ConfigError(f"--out {_short(path)}: a name in it is {len(os.fsencode(longest))} bytes long; "
                          f"the file system allows {name_max}")
    if len(os.fsencode(str(full))) >= path_max:
        raise ConfigError(f"--out {_short(path)}: path too long ({len(os.fsencode(str(path.absolute())))} bytes); the run "
                          f"writes files up to {len(os.fsencode(str(full)))} bytes long under it and the file system allows "
                          f"{path_max - 1}")


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # a name too long, for one
        return False


def _short(path: Path, most: int = 80) -> str:
    """A path for a one-line message: long ones cut in the middle."""
    text = str(path)
    return text if len(text) <= most else f"{text[: most // 2]}…{text[-most // 2:]}"


# What train and sweep write; `--force` removes them so that no earlier run's file stays behind.
RUN_FILES = ("summary.json", "metrics.csv", "learning_curve.png", "policy.npz", "sweep.csv", "sweep.png", "sweep_points.csv")


def remove_outputs(path: Path) -> None:
    """Remove an earlier run's result files from `path` (only the files a run writes; nothing else)."""
    for name in [*RUN_FILES, *(p.name for p in path.glob("policy-*.npz"))]:
        (path / name).unlink(missing_ok=True)


def prepare_out_dir(path: str | Path, force: bool, num_chunks: int = 1) -> Path:
    """Create the run directory; a non-empty one is an error unless force."""
    path = check_out_dir(path, force, num_chunks)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"--out {_short(path)}: cannot create it ({err.strerror})") from None
    try:  # by trying: os.access says yes to root even on a read-only file system
        tempfile.TemporaryFile(dir=path).close()
    except OSError as err:
        raise ConfigError(f"--out {_short(path)}: not writable ({err.strerror})") from None
    return path


def check_fit(plans) -> None:
    """planner.check_fit, its refusal pointing at the command that shows the numbers."""
    from ..planner import check_fit as check

    try:
        check(plans)
    except ConfigError as err:
        raise ConfigError(f"{err}; `cartpole-jax plan` shows the numbers") from None


def config_from_args(args):
    """(preset, Config) from --preset/--config/--set, resolved once per parse: the CLI checks it before
    jax loads, and the command reads the same result without reading the TOML file again."""
    if getattr(args, "resolved", None) is None:
        args.resolved = resolve(args.preset, args.config, args.sets)
    return args.resolved


def default_out(preset: str) -> str:
    return f"runs/{preset}-{time.strftime('%Y%m%d-%H%M%S')}"


@contextmanager
def progress_bar(quiet: bool, total_chunks: int, label: str):
    """Yields a callback for run(progress=...): a rich bar on stderr between compiled chunks."""
    if quiet:
        yield None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn(f"[bold]{label}"), BarColumn(), TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
        transient=False, console=_console(),
    )
    task = bar.add_task(label, total=total_chunks, info="compiling…")

    def update(p):
        info = (
            f"{p.env_steps:,}/{p.total_env_steps:,} steps  train return {p.train_return:6.1f}  "
            f"eval {p.eval_return:6.1f}  eps {p.epsilon:.3f}  {p.steps_per_second:,.0f} steps/s"
        )
        bar.update(task, completed=p.chunk, info=info)

    with bar:
        yield update


def _console():
    from rich.console import Console

    return Console(stderr=True)


def print_table(summary: dict, grid_keys: list[str] = ()) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{summary['preset']}: {summary['num_runs']} run(s), {summary['total_env_steps']:,} env steps each")
    for col in ["seed", *grid_keys, "final eval", "± std", "solved", "first solved step"]:
        table.add_column(col, justify="right")
    for r in summary["runs"]:
        grid = [str(r.get("grid", {}).get(k, "")) for k in grid_keys]
        mean, std = r["final_eval_return_mean"], r["final_eval_return_std"]
        table.add_row(
            str(r["seed"]), *grid, "-" if mean is None else f"{mean:.1f}", "-" if std is None else f"{std:.1f}",
            "yes" if r["solved"] else "no", "-" if r["first_solved_env_step"] is None else f"{r['first_solved_env_step']:,}",
        )
    console = Console()
    console.print(table)
    console.print(
        f"solve rate {summary['solve_rate']:.0%}  compile {summary['compile_seconds']:.1f} s  "
        f"train {summary['train_seconds']:.1f} s  {summary['env_steps_per_second']:,.0f} env steps/s  "
        f"on {summary['device']} ×{summary['num_devices']}"
    )
    from ..stats import describe

    for line in describe(summary.get("statistics")):
        console.print(line, markup=False, highlight=False)


def fail(message: str, code: int = 2) -> int:
    print(f"cartpole-jax: error: {message}", file=sys.stderr)
    return code


__all__ = ["ConfigError"]
