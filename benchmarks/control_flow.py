"""Host-synchronising control flow per vector step: the general loop (before) and the branch-free loop (after).

    python benchmarks/control_flow.py [--quick] [--device cpu|gpu] [--runs R] [--out FILE]

For each preset, compiles the CLI's real program (program.Program: R runs, the platform's kernels and
batching, sharded as `cartpole-jax train --seeds R` shards them) with the loop accelerators take
(branch-free; on CPU the CLI takes the general loop, kernels.for_platform) and the general loop of
the same config, lifted over one device's runs the same way, and counts both with
cartpole_jax.control_flow.sync_points. Nothing is run: only compiled.

Counts are per vector step of the compiled program. With batching "map" a device steps its runs one
after another, so a call takes chunk_len x runs-per-device vector steps; with "vmap" all runs step
together, so it takes chunk_len (Program.steps_per_call).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PRESETS = ("default", "purejaxrl", "seed-tutorial")
RUNS = {"cpu": 2, "gpu": 1024}
QUICK_CHUNKS = 2
QUICK_WIDTH = 8
# LLVM code generation only: runs after the HLO passes, so the optimised HLO that is counted stays the
# same (its text was identical for the default preset) while a CPU compile takes about half as long.
QUICK_CPU_FLAGS = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"

METHOD = (
    "Each preset compiled twice and not run: `after` is program.Program.get(cfg, runs, devices, loop='auto'), "
    "the program `cartpole-jax train --seeds runs` compiles on an accelerator (loop 'auto' is branch-free for "
    "all three presets; on CPU the CLI takes the general loop, `before`'s); `before` is "
    "make_trainer(cfg, loop='general').run_chunk lifted over one device's runs "
    "with the same batching and kernels, jitted. cartpole_jax.control_flow.sync_points counts conditionals and "
    "while loops of unknown trip count on the call graph of the optimised HLO, times the known trip counts of "
    "the loops around them, per vector step of the program; branches count as taken every time (upper bound). "
    "`per_step` is how many such ops run at least once a vector step; `periodic` those that run less often "
    "(the greedy evaluation's episode loop, once per evaluation)."
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shrunk runs (same schedule shape); seconds per preset")
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu", help="backend to compile for")
    parser.add_argument("--runs", type=int, default=None, help="runs in the program (default: 2 on cpu, 1024 on gpu)")
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), choices=PRESETS)
    parser.add_argument("--budget", type=float, default=None, help="seconds; presets left when it runs out are skipped")
    parser.add_argument("--out", default=None, help="JSON file to write")
    return parser.parse_args(argv)


def add_quick_cpu_flags(environ=os.environ) -> None:
    """Append QUICK_CPU_FLAGS to XLA_FLAGS (read when jax starts its backend, so call before)."""
    flags = environ.get("XLA_FLAGS", "")
    if QUICK_CPU_FLAGS not in flags:
        environ["XLA_FLAGS"] = f"{flags} {QUICK_CPU_FLAGS}".strip()


def quick_config(cfg):
    """cfg shrunk to QUICK_CHUNKS chunks and hidden layers QUICK_WIDTH wide (as many), keeping steps per
    evaluation, gradient steps per vector step and evaluation periods per chunk (what the loop's
    structure depends on)."""
    from cartpole_jax.config import validate
    from cartpole_jax.core import schedule

    periods = cfg.chunk_len // schedule.steps_per_eval(cfg)
    total = QUICK_CHUNKS * periods * cfg.eval_every
    small = cfg.replace(total_env_steps=total, num_chunks=QUICK_CHUNKS, buffer_size=min(cfg.buffer_size, total),
                        learning_starts=min(cfg.learning_starts, total // 4), hidden_sizes=(QUICK_WIDTH,) * len(cfg.hidden_sizes))
    return validate(small)


def schedule_shape(cfg) -> dict:
    """The numbers the branch-free loop's structure depends on."""
    from cartpole_jax.core import schedule

    per = schedule.steps_per_eval(cfg)
    return {
        "total_env_steps": cfg.total_env_steps, "num_envs": cfg.num_envs, "num_chunks": cfg.num_chunks,
        "chunk_len": cfg.chunk_len, "steps_per_eval": per, "gradient_steps_per_step": cfg.num_envs // cfg.train_every,
        "periods_per_chunk": cfg.chunk_len / per if per else None, "buffer_size": cfg.buffer_size,
        "branch_free": schedule.branch_free(cfg),
    }


def vector_steps_per_call(cfg, runs_per_device: int, batching: str) -> int:
    """Vector steps one call of a chunk takes on a device, as Program.steps_per_call counts them."""
    return cfg.chunk_len * (runs_per_device if batching == "map" else 1)


def count_program(cfg, runs: int, devices: list) -> dict:
    """sync_points of the CLI's compiled chunk for `runs` runs, with how it was counted."""
    from cartpole_jax.control_flow import sync_points
    from cartpole_jax.program import Program

    program = Program.get(cfg, runs, devices, loop="auto")  # the accelerators' loop, also on CPU
    seconds = program.compile(*program.prepare(cfg, range(runs), [{}] * runs))
    per_device = program.padded // len(devices)
    steps = program.steps_per_call
    counts = sync_points(program.chunk_text(), steps)
    Program.clear_cache()  # the compiled code is not needed again; free it before the next preset
    return {"counts": counts, "compile_seconds": round(seconds, 2), "vector_steps_per_call": steps,
            "runs_per_device": per_device, "batching": program.batching}


def count_general(cfg, runs_per_device: int, device, batching: str) -> dict:
    """sync_points of the general loop's chunk over one device's runs, batched as the program batches them."""
    import jax
    import jax.numpy as jnp

    from cartpole_jax.control_flow import sync_points
    from cartpole_jax.core import kernels
    from cartpole_jax.core.train import make_trainer, state_shapes
    from cartpole_jax.program import batch_hyperparams, over_runs

    chosen = kernels.for_platform(device.platform, cfg.hidden_sizes)
    trainer = make_trainer(cfg, chosen, loop="general")
    hps = jax.tree.map(jnp.asarray, batch_hyperparams(cfg, [{}] * runs_per_device))
    chunk = jax.jit(over_runs(trainer.run_chunk, batching, in_place=True), donate_argnums=0, **chosen.jit_options())  # as Program builds it
    t0 = time.perf_counter()
    with jax.default_device(device):
        compiled = chunk.lower(state_shapes(cfg, runs_per_device), hps, jnp.int32(0)).compile()
    steps = vector_steps_per_call(cfg, runs_per_device, batching)
    return {"counts": sync_points(compiled.as_text(), steps), "compile_seconds": round(time.perf_counter() - t0, 2),
            "vector_steps_per_call": steps, "runs_per_device": runs_per_device, "batching": batching}


def measure(preset: str, runs: int, quick: bool, devices: list) -> dict:
    """Both counts for one preset."""
    from cartpole_jax.config import resolve

    cfg = resolve(preset)[1]
    cfg = quick_config(cfg) if quick else cfg
    shape = schedule_shape(cfg)
    if not shape["branch_free"]:
        raise SystemExit(f"{preset}: the {'shrunk ' if quick else ''}config is not branch-free: {shape}")
    after = count_program(cfg, runs, devices)
    before = count_general(cfg, after["runs_per_device"], devices[0], after["batching"])
    return {"config": shape, "before": before, "after": after}


def summary_row(preset: str, loop: str, part: dict) -> dict:
    """One table row: the counts that matter, rounded."""
    c = part["counts"]
    periodic = sum(p["per_step"] for p in c["periodic"])
    return {"preset": preset, "loop": loop, "sync_ops_per_step": c["per_step"],
            "conditionals_per_step": round(c["conditionals_per_step"], 3), "unknown_loops_per_step": round(c["unknown_loops_per_step"], 3),
            "periodic_per_step": round(periodic, 6), "compile_seconds": part["compile_seconds"]}


def table(rows: list[dict]) -> str:
    """The rows as aligned text."""
    names = ("sync ops/step", "conds/step", "loops/step", "periodic/step", "compile s")
    lines = [f"{'preset':14s} {'loop':12s} " + " ".join(f"{n:>13s}" for n in names)]
    for r in rows:
        lines.append(f"{r['preset']:14s} {r['loop']:12s} {r['sync_ops_per_step']:13d} {r['conditionals_per_step']:13g} "
                     f"{r['unknown_loops_per_step']:13g} {r['periodic_per_step']:13.6g} {r['compile_seconds']:13.1f}")
    return "\n".join(lines)


def run(args: argparse.Namespace, log=print) -> dict:
    """Count every asked preset (under the budget) and return the JSON-ready result."""
    from benchmarks.timing import Budget, machine
    from cartpole_jax.program import pick_devices

    runs = args.runs or RUNS[args.device]
    devices = pick_devices(None, runs)  # as `cartpole-jax train --seeds runs` picks them
    budget = Budget(args.budget or float("inf"))
    presets, rows, skipped, last = {}, [], [], 0.0
    for preset in args.presets:
        if not budget.allows(last):  # the last preset's time predicts the next one's
            skipped.append({"preset": preset, "reason": f"time budget: {max(budget.left(), 0):.0f} s left, last preset took {last:.0f} s"})
            continue
        t0 = time.perf_counter()
        presets[preset] = measure(preset, runs, args.quick, devices)
        last = time.perf_counter() - t0
        rows += [summary_row(preset, "general", presets[preset]["before"]), summary_row(preset, "branch-free", presets[preset]["after"])]
        log(f"{preset}: counted in {last:.1f} s")
    meta = {**machine(), "runs": runs, "num_devices": len(devices), "quick": args.quick, "argv": sys.argv[1:],
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "total_seconds": round(budget.elapsed(), 1),
            "command": "python benchmarks/control_flow.py" + (" --quick" if args.quick else "") + f" --device {args.device} --runs {runs}"}
    if args.quick:
        meta["note"] = (f"--quick: each preset shrunk to {QUICK_CHUNKS} chunks (total_env_steps, buffer_size, learning_starts) and "
                        f"hidden layers {QUICK_WIDTH} wide; same steps per evaluation, gradient steps per vector step and "
                        "evaluation periods per chunk" + (f"; compiled with XLA_FLAGS {QUICK_CPU_FLAGS}" if args.device == "cpu" else ""))
    return {"meta": meta, "method": METHOD, "table": rows, "presets": presets, "skipped": skipped}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.quick and args.device == "cpu":
        add_quick_cpu_flags()
    from benchmarks.throughput import select_backend
    from cartpole_jax.host import use_cpu_cores

    use_cpu_cores()  # as the CLI does: on CPU, one device per core, so runs are sharded the CLI's way
    select_backend(args.device)
    result = run(args, log=lambda s: print(s, flush=True))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(table(result["table"]))
    for s in result["skipped"]:
        print(f"skipped {s['preset']}: {s['reason']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
