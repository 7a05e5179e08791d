"""`cartpole-jax plan`: memory per run, the compiled program's own numbers, and how many runs fit."""

from __future__ import annotations

from .common import add_config_flags, add_seed_flags, config_from_args


def add_parser(sub) -> None:
    p = sub.add_parser("plan", help="print the memory a train/sweep would need and how many runs fit each device")
    add_config_flags(p)
    p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...", help="as for sweep (repeatable)")
    add_seed_flags(p)
    p.add_argument("--no-compile", action="store_true", help="shapes only: skip compiling for memory_analysis")


def main(args) -> int:
    from ..planner import attach_compiled, format_plan, make_plan
    from ..program import pick_devices
    from ..sweep import parse_grid, plan_runs

    preset, cfg = config_from_args(args)
    grid = parse_grid(args.grid)
    _, _, groups = plan_runs(cfg, grid, range(args.seed, args.seed + args.seeds))
    devices = [pick_devices(args.devices, len(g.runs)) for g in groups]
    plans = [make_plan(g.config, len(g.runs), d, args.batching) for g, d in zip(groups, devices, strict=True)]
    total = sum(p.num_runs for p in plans)
    most = max(devices, key=len)
    print(f"plan: preset {preset}, {total} run(s) in {len(plans)} program(s) on up to {len(most)} × {most[0].platform}")
    for i, (plan, group) in enumerate(zip(plans, groups, strict=True)):
        if plan.fits and not args.no_compile:
            attach_compiled(plan, devices[i])
        else:
            plan.compiled = False  # not compiled: it would not fit, or --no-compile
        label = ", ".join(f"{k}={v}" for k, v in group.static.items())
        print(format_plan(plan, f"{i + 1}/{len(plans)}" + (f" ({label})" if label else "")))
    fits = all(p.fits for p in plans)
    print("verdict: fits" if fits else "verdict: does NOT fit (sweep and train will refuse it)")
    return 0 if fits else 1
