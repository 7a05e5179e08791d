"""`cartpole-jax train`: N seeds of one config in one compiled call, written to a run directory."""

from __future__ import annotations

from ..outputs import prepare_out_dir, write_run
from ..run import run as run_program
from .common import add_config_flags, add_out_flags, add_seed_flags, config_from_args, default_out, print_table, progress_bar


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train seeds S..S+N-1 and write a run directory")
    add_config_flags(p)
    add_seed_flags(p)
    add_out_flags(p)


def run(args) -> int:
    preset, cfg = config_from_args(args)
    from ..run import pick_devices

    pick_devices(args.devices)  # a bad --devices fails before anything is written
    out = prepare_out_dir(args.out or default_out(preset), args.force)
    seeds = range(args.seed, args.seed + args.seeds)
    with progress_bar(args.quiet, cfg.num_chunks, f"{preset} ×{args.seeds}") as progress:
        result = run_program(cfg, seeds, preset=preset, devices=args.devices, progress=progress)
    summary = write_run(out, result, f"{preset}: {args.seeds} seed(s)")
    if not args.quiet:
        print_table(summary)
        print(f"run directory: {out}")
    return 0
