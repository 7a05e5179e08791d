"""Flags and host-side reporting shared by the commands."""

from __future__ import annotations

import argparse
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from ..config import PRESETS, ConfigError, resolve


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


def check_out_dir(path: str | Path, force: bool) -> Path:
    """Refuse a path that is a file, or a non-empty directory without force; create nothing."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--out {path}: exists and is not a directory")
    if path.is_dir() and any(path.iterdir()) and not force:
        raise ConfigError(f"--out {path}: directory is not empty (pass --force to overwrite)")
    return path


def prepare_out_dir(path: str | Path, force: bool) -> Path:
    """Create the run directory; a non-empty one is an error unless force."""
    path = check_out_dir(path, force)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"--out {path}: cannot create it ({err.strerror})") from None
    if not os.access(path, os.W_OK):
        raise ConfigError(f"--out {path}: not writable")
    return path


def check_fit(plans) -> None:
    """planner.check_fit, its refusal pointing at the command that shows the numbers."""
    from ..planner import check_fit as check

    try:
        check(plans)
    except ConfigError as err:
        raise ConfigError(f"{err}; `cartpole-jax plan` shows the numbers") from None


def config_from_args(args):
    preset, cfg = resolve(args.preset, args.config, args.sets)
    return preset, cfg


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


def fail(message: str, code: int = 2) -> int:
    print(f"cartpole-jax: error: {message}", file=sys.stderr)
    return code


__all__ = ["ConfigError"]
