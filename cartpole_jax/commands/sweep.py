"""`cartpole-jax sweep`: every grid point × N seeds, one compiled program per static combination."""

from __future__ import annotations

import sys
from contextlib import ExitStack
from pathlib import Path

from .. import distributed, runlock, tracking
from .common import (
    add_config_flags,
    add_out_flags,
    add_seed_flags,
    check_fit,
    check_out_dir,
    config_from_args,
    default_out,
    prepare_out_dir,
    print_table,
    progress_bar,
    remove_outputs,
)
from .stopping import stop_on_signals


def add_parser(sub) -> None:
    p = sub.add_parser("sweep", help="train a grid of configs × seeds and write one sweep directory")
    add_config_flags(p)
    p.add_argument("--grid", action="append", required=True, metavar="KEY=V1,V2,...",
                   help="values of one config key to sweep (repeatable; lists like [32,32],[64,64] are fine)")
    add_seed_flags(p)
    add_out_flags(p)
    distributed.add_flags(p)
    tracking.add_flag(p)


def main(args) -> int:
    # a logger that is not installed fails before anything is written or compiled (args built by hand may lack --log)
    log = tracking.parse(getattr(args, "log", []))
    distributed.setup(args)  # before anything touches a device
    from ..planner import make_plan
    from ..program import pick_devices
    from ..sweep import parse_grid, plan_runs

    preset, cfg = config_from_args(args)
    grid = parse_grid(args.grid)
    seeds = range(args.seed, args.seed + args.seeds)
    run_grid, run_seeds, groups = plan_runs(cfg, grid, seeds)
    check_fit([make_plan(g.config, len(g.runs), pick_devices(args.devices, len(g.runs)), args.batching) for g in groups])
    writer = distributed.is_writer()
    if len(groups) > 1 and writer:
        static = ", ".join(k for k in groups[0].static)
        print(f"cartpole-jax: sweep: grid over static key(s) {static} needs {len(groups)} compiled programs "
              "(one per static combination); vmappable keys are batched inside each", file=sys.stderr)
    with ExitStack() as held:
        # Process 0 alone checks, creates and locks the sweep directory; the others take its verdict.
        out = distributed.on_writer(_claim, args, preset, held)
        out = Path(out) if writer else None
        tracker = tracking.Tracker(out, log, tracking.run_specs(cfg.to_dict(), preset, run_seeds, run_grid), fresh=True)
        return _sweep(args, out, preset, cfg, grid, seeds, groups, tracker)


def _claim(args, preset: str, held: ExitStack) -> str:
    """The sweep directory, checked, created, locked (until `held` closes) and emptied of an earlier run's files."""
    out = prepare_out_dir(args.out or default_out(f"sweep-{preset}"), args.force)
    held.enter_context(runlock.hold(out, "cartpole-jax sweep"))
    check_out_dir(out, args.force)  # again under the lock: another command may have filled it meanwhile
    remove_outputs(out)
    return str(out)


def _sweep(args, out, preset: str, cfg, grid: dict, seeds, groups, tracker) -> int:
    """Train every group, streaming to `tracker`, and write the sweep directory (`out` None: not this process's job)."""
    from ..sweep import run_sweep, throughput, write_sweep

    num_runs = sum(len(g.runs) for g in groups)
    with ExitStack() as bars, tracker:

        def progress(i, group):
            bars.close()  # finish the previous program's bar
            label = f"{preset} sweep" + (f" {i + 1}/{len(groups)}" if len(groups) > 1 else "") + f" ×{len(group.runs)}"
            bar = progress_bar(args.quiet or out is None, group.config.num_chunks, label)  # one bar per job, process 0's
            return tracking.chain(bars.enter_context(bar), tracker.feed(group.runs))

        result = run_sweep(cfg, grid, seeds, preset=preset, devices=args.devices, batching=args.batching, progress=progress)
    if out is None:
        return 0
    with stop_on_signals("finishing the sweep's files first") as stop:  # a signal never cuts them short
        summary = write_sweep(out, result, f"{preset} sweep: {num_runs} runs")
    if not args.quiet:
        print_table(summary, list(grid))
        print(throughput(summary))
        print(f"sweep directory: {out}")
    if stop.is_set():
        print(f"cartpole-jax: {stop.name} came as the sweep ended; it is finished and all its files are written", file=sys.stderr)
        return stop.code
    return 0
