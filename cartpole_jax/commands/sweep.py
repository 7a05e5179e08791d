"""`cartpole-jax sweep`: every grid point × N seeds, one compiled program per static combination."""

from __future__ import annotations

import sys
from contextlib import ExitStack

from .. import distributed
from .common import (
    add_config_flags,
    add_out_flags,
    add_seed_flags,
    check_fit,
    config_from_args,
    default_out,
    prepare_out_dir,
    print_table,
    progress_bar,
)


def add_parser(sub) -> None:
    p = sub.add_parser("sweep", help="train a grid of configs × seeds and write one sweep directory")
    add_config_flags(p)
    p.add_argument("--grid", action="append", required=True, metavar="KEY=V1,V2,...",
                   help="values of one config key to sweep (repeatable; lists like [32,32],[64,64] are fine)")
    add_seed_flags(p)
    add_out_flags(p)
    distributed.add_flags(p)


def main(args) -> int:
    distributed.setup(args)  # before anything touches a device
    from ..planner import make_plan
    from ..program import pick_devices
    from ..sweep import parse_grid, plan_runs, run_sweep, throughput, write_sweep

    preset, cfg = config_from_args(args)
    grid = parse_grid(args.grid)
    seeds = range(args.seed, args.seed + args.seeds)
    _, _, groups = plan_runs(cfg, grid, seeds)
    check_fit([make_plan(g.config, len(g.runs), pick_devices(args.devices, len(g.runs)), args.batching) for g in groups])
    if len(groups) > 1:
        static = ", ".join(k for k in groups[0].static)
        print(f"cartpole-jax: sweep: grid over static key(s) {static} needs {len(groups)} compiled programs "
              "(one per static combination); vmappable keys are batched inside each", file=sys.stderr)
    writer = distributed.is_writer()
    out = prepare_out_dir(args.out or default_out(f"sweep-{preset}"), args.force) if writer else None
    num_runs = sum(len(g.runs) for g in groups)
    with ExitStack() as bars:

        def progress(i, group):
            bars.close()  # finish the previous program's bar
            label = f"{preset} sweep" + (f" {i + 1}/{len(groups)}" if len(groups) > 1 else "") + f" ×{len(group.runs)}"
            return bars.enter_context(progress_bar(args.quiet, group.config.num_chunks, label))

        result = run_sweep(cfg, grid, seeds, preset=preset, devices=args.devices, batching=args.batching, progress=progress)
    if not writer:
        return 0
    summary = write_sweep(out, result, f"{preset} sweep: {num_runs} runs")
    if not args.quiet:
        print_table(summary, list(grid))
        print(throughput(summary))
        print(f"sweep directory: {out}")
    return 0
