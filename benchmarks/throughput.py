"""Throughput benchmarks: env-only, training, update-only bound, and the Python-loop baseline.

    python benchmarks/throughput.py [--quick] [--out benchmarks/results] [--device cpu|gpu]
    python benchmarks/throughput.py --scaling [--quick] --out DIR [--device cpu|gpu]   # what gpu.sh runs

Writes throughput.json (every record, the method, the machine), throughput.md (tables and the
issue's target ratios) and PNG plots under --out. Sizes are tried smallest first; when the time
budget runs short the rest are skipped and listed as such in the JSON, never extrapolated.

--scaling (issue 16) times the default preset from 1 seed up to the most runs the memory planner
fits on one device, with its update-only and env-only bounds; re-times some sizes under XLA:GPU
command-buffer flags; times `cartpole-jax train --seeds 1024` as a user runs it; and counts
host-synchronising control flow (benchmarks/control_flow.py). Each part runs in a child process
(XLA_FLAGS are read once per process, and a GPU is preallocated by whichever process starts it
first), under one time budget. Writes scaling.json, scaling.md, scaling.png and control_flow.json.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


@dataclass(frozen=True)
class Plan:
    """What to measure: sizes, repeats and the time each part may take."""

    env_sizes: tuple[int, ...]
    seeds: tuple[int, ...]
    train_presets: tuple[str, ...] = ("purejaxrl", "default")
    loop_presets: tuple[str, ...] = ("seed-tutorial", "purejaxrl")
    chunk_env_steps: tuple[tuple[str, int], ...] = (("purejaxrl", 10_000), ("default", 2_000), ("seed-tutorial", 1_000))
    repeats: int = 3
    env_target_seconds: float = 0.3
    budget_seconds: float = 1080.0
    overrides: dict | None = None  # config fields changed in every preset (tests shrink the networks)
    seed_cost_exponent: float = 1.0  # cost ~ seeds**this: runs are looped on CPU, batched on GPU

    def chunk(self, preset: str) -> int:
        return dict(self.chunk_env_steps)[preset]


SHORT_CHUNKS = (("purejaxrl", 5_000), ("default", 1_000), ("seed-tutorial", 500))
PLANS = {
    ("cpu", False): Plan(env_sizes=(1, 16, 256, 1024, 4096), seeds=(1, 4, 16, 64)),
    ("cpu", True): Plan(env_sizes=(1, 16, 256, 1024, 4096), seeds=(1, 4), env_target_seconds=0.1, budget_seconds=165.0,
                        chunk_env_steps=SHORT_CHUNKS),
    ("gpu", False): Plan(env_sizes=tuple(4**k for k in range(11)), seeds=(1, 4, 16, 64, 256, 1024), budget_seconds=400.0,
                         env_target_seconds=0.2, seed_cost_exponent=0.5),
    ("gpu", True): Plan(env_sizes=(1, 256, 4096, 1 << 16, 1 << 20), seeds=(1, 16, 256), budget_seconds=150.0,
                        env_target_seconds=0.1, seed_cost_exponent=0.5, chunk_env_steps=SHORT_CHUNKS),
}

METHOD = {
    "timing": "Each figure is the median over `repeats` timed repeats, with min and max; compiling (ahead of time, "
              "`compile_seconds`) and warm-up runs (`warmup_seconds`) are timed apart and excluded.",
    "env": "Random actions, auto-reset. JAX impls: a jitted lax.scan of `vector_steps_per_call` steps, called "
           "`calls_per_repeat` times per repeat, observations carried. gymnasium: env.step in a Python loop with NumPy "
           "random actions.",
    "train": "The preset unchanged except num_chunks (one chunk = `chunk_env_steps_per_seed` env steps per seed), run "
             "through cartpole_jax.driver.train_runs; the chunks up to learning_starts plus one are warm-up, each following "
             "chunk is one repeat, and the run stops after them. Steps/s count all seeds.",
    "update_bound": "learner.make_update with the preset's network, optimizer and batch size, in a lax.scan over "
                    "pre-generated synthetic batches, as many gradient steps per seed as one timed training chunk; "
                    "no env, buffer, actor, evaluation or hard target copies. Reported as env steps/s equivalent: the "
                    "chunk's env steps over the time of its gradient steps alone.",
    "python_loop": "One seed; gymnasium make_vec(vector_entry_point) with the preset's num_envs, a NumPy replay buffer, "
                   "jitted act and jitted learner update called from Python once per vector step (CleanRL/Keras "
                   "structure); timed over as many vector steps as one training chunk, after learning_starts.",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: under 3 minutes on 2 CPU cores")
    parser.add_argument("--out", default="benchmarks/results", help="folder for throughput.json, .md and PNGs")
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu", help="which backend, and its size grid")
    parser.add_argument("--budget", type=float, default=None, help="seconds the whole run may take (default: the plan's)")
    parser.add_argument("--rebuild", action="store_true", help="measure nothing: redo the .md and PNGs from --out's JSON")
    parser.add_argument("--external", default=str(Path(__file__).with_name("external_purejaxrl.json")),
                        help="JSON of externally measured rows to show in throughput.md, if present")
    parser.add_argument("--scaling", action="store_true", help="issue 16's measurements (see above) instead of the suite")
    parser.add_argument("--part", choices=("sizes", "variant"), help=argparse.SUPPRESS)  # a --scaling child
    parser.add_argument("--part-out", help=argparse.SUPPRESS)
    parser.add_argument("--variant", default="default", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def select_backend(device: str) -> None:
    """Pin JAX to the asked backend before anything initialises it; fail clearly when it is missing."""
    import jax

    jax.config.update("jax_platforms", "cuda" if device == "gpu" else "cpu")
    try:
        jax.devices()
    except RuntimeError as err:
        raise SystemExit(f"--device {device}: no such JAX backend here ({err})") from None


def benchmark(plan: Plan, out: Path, *, budget_seconds: float | None = None, external: str | None = None,
              quick: bool = False, device: str = "cpu", log=print) -> dict:
    """Run every section of `plan` and write throughput.json, throughput.md and the plots to `out`."""
    from benchmarks import report, suite
    from benchmarks.timing import Budget, machine

    budget = Budget(budget_seconds or plan.budget_seconds)
    meta = {**machine(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "quick": quick, "device_arg": device,
            "argv": sys.argv[1:], "plan": dataclasses.asdict(plan)}

    def save(records: list[dict], skipped: list[dict]) -> dict:
        result = {"meta": {**meta, "total_seconds": round(budget.elapsed(), 1)}, "method": METHOD, "records": records,
                  "skipped": skipped, "ratios": report.ratios(records), "external": report.load_external(external)}
        out.mkdir(parents=True, exist_ok=True)
        (out / "throughput.json").write_text(json.dumps(result, indent=1, default=float) + "\n")
        (out / "throughput.md").write_text(report.markdown(result))
        return result

    result = save(*suite.run_all(plan, budget, log=log, save=save))
    report.plots(result, out)
    log(f"wrote {out}/throughput.json, throughput.md and plots in {budget.elapsed():.0f} s")
    return result


def rebuild(out: Path, external: str | None) -> None:
    """Rewrite throughput.md and the plots from throughput.json, with the external rows reloaded."""
    from benchmarks import report

    result = json.loads((out / "throughput.json").read_text())
    result["ratios"], result["external"] = report.ratios(result["records"]), report.load_external(external)
    (out / "throughput.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / "throughput.md").write_text(report.markdown(result))
    report.plots(result, out)


# ---- --scaling: seeds up to what one device holds (issue 16; benchmarks/gpu.sh) ----

SCALING_PRESET = "default"
SCALING_TARGETS = {  # issue 16
    "default_1_seed_steps_per_second": 60_000.0,
    "train_vs_update_bound": 0.8,
    "largest_count_steps_per_second": 50e6,
    "cli_1024_seeds_wall_seconds": 8.0,
}
# XLA:GPU command buffers (CUDA graphs), as XLA_FLAGS. Names checked in XLA's debug_options_flags.cc and
# command_buffer_conversion_pass.cc: WHILE and CONDITIONAL exist as command types and are dropped there
# below CUDA 12.3. The list is written out in full (XLA's default set, then the two) because the
# "+WHILE,+CONDITIONAL" form applies only its first item in that parser.
_WITH_LOOPS = "--xla_gpu_enable_command_buffer=FUSION,CUBLAS,CUBLASLT,CUSTOM_CALL,CUDNN,WHILE,CONDITIONAL"
COMMAND_BUFFERS = {
    "off": "--xla_gpu_enable_command_buffer=",
    "while_conditional": _WITH_LOOPS,
    "while_conditional_min1": f"{_WITH_LOOPS} --xla_gpu_graph_min_graph_size=1",
}
QUICK_OVERRIDES = dict(total_env_steps=8_000, buffer_size=1_000, eval_every=1_000, eval_episodes=2, hidden_sizes=(8, 8))
QUICK_CLI_SETS = ("total_env_steps=4000", "eval_every=1000", "eval_episodes=2", "hidden_sizes=[8, 8]")
REPORT_SECONDS = 15.0  # kept back from the budget for the report
ROOT = Path(__file__).resolve().parent.parent

# (step, seconds it may take), in order of importance; a step is skipped when under half its seconds are left
GPU_STEPS = (("control_flow", 90), ("sizes", 190), ("cli_cold", 60), ("cmdbuf_off", 40), ("cmdbuf_while_conditional", 40),
             ("cli_warm", 45), ("cli_warm_no_checkpoints", 45), ("cmdbuf_while_conditional_min1", 40))
CPU_QUICK_STEPS = (("control_flow", 30), ("sizes", 55), ("cli_cold", 30), ("cmdbuf_off", 25), ("cmdbuf_while_conditional", 25),
                   ("cli_warm", 20))


@dataclass(frozen=True)
class ScalingPlan:
    """What --scaling measures and the seconds each step may take."""

    base_seeds: tuple[int, ...]  # timed where the planner says they fit, then its maximum
    steps: tuple[tuple[str, float], ...] = GPU_STEPS
    largest: int | None = None  # no seed count above this (CPU plans); None: up to the planner's maximum
    variant_seeds: tuple[int, ...] = (1, 1024)
    cli_seeds: int = 1024
    cli_sets: tuple[str, ...] = ()
    chunk_env_steps: int = 2_000  # one evaluation period of the default preset: its branch-free loop
    repeats: int = 3
    env_target_seconds: float = 0.2
    overrides: dict | None = None
    budget_seconds: float = 440.0
    control_flow_runs: int = 1024
    control_flow_presets: tuple[str, ...] = ("default", "purejaxrl", "seed-tutorial")
    seed_cost_exponent: float = 0.5


SCALING_PLANS = {
    ("gpu", False): ScalingPlan(base_seeds=(1, 1024, 4096, 16384)),
    ("gpu", True): ScalingPlan(base_seeds=(1, 1024), largest=1024, variant_seeds=(1,), budget_seconds=240.0),
    ("cpu", False): ScalingPlan(base_seeds=(1, 4, 16), largest=16, variant_seeds=(1,), cli_seeds=4, budget_seconds=900.0,
                                control_flow_runs=2, seed_cost_exponent=1.0),
    ("cpu", True): ScalingPlan(base_seeds=(1, 2), steps=CPU_QUICK_STEPS, largest=2, variant_seeds=(1,), cli_seeds=2,
                               cli_sets=QUICK_CLI_SETS, chunk_env_steps=1_000, env_target_seconds=0.05, overrides=QUICK_OVERRIDES,
                               budget_seconds=160.0, control_flow_runs=2, control_flow_presets=("default",)),
}


def scaling_sizes(most: int, base: Sequence[int], largest: int | None = None) -> tuple[list[int], list[int]]:
    """(seed counts to time, counts left out): the base counts that fit, then `most` itself; none above `largest`."""
    wanted = sorted({n for n in base if n <= most} | ({most} if most > 0 else set()))
    cap = most if largest is None else min(largest, most)
    return [n for n in wanted if n <= cap], [n for n in wanted if n > cap]


def planned_sizes(cfg, capacity: int, plan: ScalingPlan) -> dict:
    """The memory planner's most runs on one device (batched with vmap) and the seed counts to time."""
    from cartpole_jax import planner

    most = planner.max_runs_per_device(cfg, capacity, "vmap")
    sizes, left_out = scaling_sizes(most, plan.base_seeds, plan.largest)
    return {"capacity_bytes": capacity, "max_runs_per_device": most, "batching": "vmap", "sizes": sizes, "left_out": left_out,
            "state_bytes_per_run": sum(planner.state_breakdown(cfg).values()),
            "peak_bytes_at_max": planner.estimate_peak(cfg, most, "vmap")}


# -- children (jax started) --

def _attempt(guard, group: str, size: int, what: dict, fn, skipped: list, log) -> dict | None:
    """guard.run, with a failure (out of memory at the largest counts) recorded as a skip, not raised."""
    try:
        return guard.run(group, size, what, fn, log)
    except Exception as err:  # any failure of one size is a result to report
        first = (str(err).strip().splitlines() or [""])[0]
        skipped.append({**what, "reason": f"failed: {type(err).__name__}: {first[:300]}"})
        log(f"failed {what}: {type(err).__name__}: {first[:300]}")
        return None


def _env_bound(n: int, cfg, plan: ScalingPlan) -> dict:
    """Env-only steps/s of n seeds' envs (n x num_envs envs in one batch): what the loop could reach without learning."""
    from benchmarks import envs

    rec = envs.bench("cartpole_jax", n * cfg.num_envs, plan.repeats, plan.env_target_seconds)
    return {**rec, "kind": "env_bound", "preset": SCALING_PRESET, "num_seeds": n}


def size_items(n: int, cfg, plan: ScalingPlan, bounds: bool):
    """(kind, fn) pairs timed at n seeds: the loop, then its two bounds."""
    from functools import partial

    from benchmarks import training

    args = (SCALING_PRESET, n, plan.chunk_env_steps, plan.repeats)
    yield "train", partial(training.bench_train, *args, batching="vmap", overrides=plan.overrides)
    if bounds:
        yield "update_bound", partial(training.bench_update_bound, *args, batching="vmap", overrides=plan.overrides)
        yield "env_bound", partial(_env_bound, n, cfg, plan)


def time_sizes(sizes: Sequence[int], cfg, plan: ScalingPlan, budget, bounds: bool, save, log) -> None:
    """Time every size smallest first, saving after each; stop adding sizes when the budget runs short."""
    from benchmarks import training
    from benchmarks.suite import Guard

    records, skipped = [], []
    guard = Guard(budget, skipped, plan.seed_cost_exponent)
    for n in sizes:
        for kind, fn in size_items(n, cfg, plan, bounds):
            rec = _attempt(guard, kind, n, {"kind": kind, "preset": SCALING_PRESET, "num_seeds": n}, fn, skipped, log)
            records.extend([rec] if rec else [])
            save(records, skipped)
        training.clear_compiled()  # free this size's programs before the next, larger one


def run_part(args: argparse.Namespace) -> None:
    """A --scaling child: time the sizes the planner gives (with bounds), or one command-buffer variant's sizes."""
    from benchmarks import training
    from benchmarks.timing import Budget, machine
    from cartpole_jax.planner import device_capacity
    from cartpole_jax.program import pick_devices

    plan = SCALING_PLANS[(args.device, args.quick)]
    budget = Budget(args.budget or plan.budget_seconds)
    cfg = training.timing_config(SCALING_PRESET, plan.chunk_env_steps, plan.overrides)
    capacity, source = device_capacity(pick_devices(1))
    sizes = planned_sizes(cfg, capacity, plan) | {"capacity_source": source}
    meta = {**machine(), "plugins": _plugin_versions(), "variant": args.variant, "xla_flags": os.environ.get("XLA_FLAGS", ""),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    out = Path(args.part_out)

    def save(records: list, skipped: list) -> None:
        for r in records:
            r["variant"] = args.variant
        part = {"meta": {**meta, "seconds": round(budget.elapsed(), 1)}, "planner": sizes, "records": records, "skipped": skipped}
        out.write_text(json.dumps(part, indent=1, default=float) + "\n")

    chosen = sizes["sizes"] if args.part == "sizes" else [n for n in plan.variant_seeds if n <= sizes["max_runs_per_device"]]
    save([], [])
    time_sizes(chosen, cfg, plan, budget, args.part == "sizes", save, lambda s: print(s, flush=True))


def _plugin_versions() -> dict:
    """Versions of jax's CUDA plugin packages, where installed (they carry XLA:GPU)."""
    import importlib.metadata

    found = {}
    for name in ("jax-cuda12-plugin", "jax-cuda12-pjrt", "jax-cuda13-plugin", "jax-cuda13-pjrt"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[name] = importlib.metadata.version(name)
    return found


# -- the parent (no jax) --

def child_env(**extra: str) -> dict:
    """Our environment, with the repository importable and output unbuffered."""
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{path}" if path else str(ROOT), "PYTHONUNBUFFERED": "1", **extra}


def run_child(argv: list[str], seconds: float, env: dict, log=print) -> dict:
    """Run argv with a hard time limit, echoing its output; (return code, seconds, whether killed, output tail)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT)
    killed = threading.Event()
    timer = threading.Timer(seconds, lambda: (killed.set(), proc.kill()))
    timer.start()
    tail: collections.deque[str] = collections.deque(maxlen=25)
    for line in proc.stdout:
        log("  | " + line.rstrip())
        tail.append(line.rstrip())
    rc = proc.wait()
    timer.cancel()
    return {"returncode": rc, "seconds": round(time.perf_counter() - t0, 2), "killed_at_limit": killed.is_set(), "tail": list(tail)}


def _py(*args: str) -> list[str]:
    return [sys.executable, *args]


def step_control_flow(ctx: dict, seconds: float) -> dict:
    """benchmarks/control_flow.py on this device: writes control_flow.json beside the other results."""
    plan, out = ctx["plan"], ctx["out"]
    argv = _py(str(ROOT / "benchmarks" / "control_flow.py"), "--device", ctx["device"], "--runs", str(plan.control_flow_runs),
               "--presets", *plan.control_flow_presets, "--budget", str(max(seconds - 20, 1)), "--out", str(out / "control_flow.json"))
    res = run_child(argv + (["--quick"] if ctx["quick"] else []), seconds, child_env(), ctx["log"])
    path = out / "control_flow.json"
    return {**res, "result": json.loads(path.read_text()) if res["returncode"] == 0 and path.exists() else None}


def step_part(ctx: dict, seconds: float, part: str, variant: str = "default") -> dict:
    """A timing child (sizes, or a command-buffer variant under its XLA_FLAGS)."""
    target = ctx["tmp"] / f"{part}-{variant}.json"
    argv = _py(str(Path(__file__).resolve()), "--part", part, "--variant", variant, "--part-out", str(target), "--device", ctx["device"],
               "--budget", str(max(seconds - 15, 1)))
    flags = COMMAND_BUFFERS.get(variant)
    env = child_env(XLA_FLAGS=f"{os.environ.get('XLA_FLAGS', '')} {flags}".strip()) if flags is not None else child_env()
    res = run_child(argv + (["--quick"] if ctx["quick"] else []), seconds, env, ctx["log"])
    return {**res, "xla_flags": flags, "result": json.loads(target.read_text()) if target.exists() else None}


def step_cli(ctx: dict, seconds: float, name: str) -> dict:
    """`cartpole-jax train --seeds N` as a user runs it, timed from outside (interpreter start to exit)."""
    plan, cache = ctx["plan"], ctx["tmp"] / "xla-cache"
    cache.mkdir(exist_ok=True)
    warm = any(cache.iterdir())
    sets = [*plan.cli_sets, *(["checkpoint_every=0"] if name.endswith("no_checkpoints") else [])]
    run_dir = ctx["tmp"] / name
    args = ["train", "--preset", SCALING_PRESET, "--seeds", str(plan.cli_seeds), "--out", str(run_dir), "--quiet"]
    args += [x for s in sets for x in ("--set", s)]
    res = run_child(_py("-m", "cartpole_jax", *args), seconds, child_env(CARTPOLE_JAX_CACHE=str(cache)), ctx["log"])
    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    shutil.rmtree(run_dir, ignore_errors=True)  # checkpoints of 1024 seeds are gigabytes
    keep = ("compile_seconds", "train_seconds", "env_steps_per_second", "num_seeds", "num_devices", "device")
    return {**res, "command": "cartpole-jax " + " ".join(args).replace(str(run_dir), "RUN_DIR"), "seeds": plan.cli_seeds,
            "compile_cache": "warm" if warm else "cold", "wall_seconds": res["seconds"], **{k: summary.get(k) for k in keep}}


def run_step(ctx: dict, name: str, seconds: float) -> dict:
    """Dispatch one step by name."""
    if name == "control_flow":
        return step_control_flow(ctx, seconds)
    if name == "sizes":
        return step_part(ctx, seconds, "sizes")
    if name.startswith("cmdbuf_"):
        return step_part(ctx, seconds, "variant", name.removeprefix("cmdbuf_"))
    return step_cli(ctx, seconds, name)


def scaling(plan: ScalingPlan, out: Path, device: str, quick: bool, budget_seconds: float | None = None, log=None) -> dict:
    """Run the plan's steps in child processes under one budget, then write scaling.json, .md and .png."""
    from benchmarks.timing import Budget

    log = log or (lambda s: print(s, flush=True))
    budget = Budget(budget_seconds or plan.budget_seconds)
    if quick and device == "cpu":  # a quick CPU run tests the script, not the speed: every child compiles faster
        from benchmarks.control_flow import add_quick_cpu_flags

        add_quick_cpu_flags()
    out.mkdir(parents=True, exist_ok=True)
    ctx = {"plan": plan, "out": out, "device": device, "quick": quick, "log": log, "tmp": Path(tempfile.mkdtemp(prefix="scaling-"))}
    steps, skipped = {}, []
    try:
        for name, cap in plan.steps:
            seconds = min(cap, budget.left() - REPORT_SECONDS)
            if seconds < cap / 2:
                skipped.append({"step": name, "reason": f"time budget: {max(budget.left(), 0):.0f} s left, step needs up to {cap:.0f} s"})
                log(f"skip {name}: {skipped[-1]['reason']}")
                continue
            log(f"== {name} (up to {seconds:.0f} s, {budget.left():.0f} s left)")
            steps[name] = run_step(ctx, name, seconds)
    finally:
        shutil.rmtree(ctx["tmp"], ignore_errors=True)
    result = assemble(plan, steps, skipped, device, quick, budget.elapsed())
    write_scaling(result, out)
    log(f"wrote {out}/scaling.json, scaling.md, scaling.png in {budget.elapsed():.0f} s")
    return result


# -- the report --

SCALING_METHOD = {
    "train": "benchmarks/training.bench_train on the default preset (num_chunks so one chunk is chunk_env_steps env steps per "
             "seed, one evaluation period: the branch-free loop), batching=vmap, through driver.train_runs; median of the "
             "timed chunks after warm-up. Steps/s count all seeds.",
    "update_bound": "benchmarks/training.bench_update_bound: the same gradient steps per seed alone, vmapped over seeds.",
    "env_bound": "benchmarks/envs.bench('cartpole_jax', seeds x num_envs): env steps alone, random actions, in one batch.",
    "sizes": "1, 1,024, 4,096 and 16,384 seeds where the memory planner (planner.max_runs_per_device, batching=vmap, the "
             "device's memory_stats bytes_limit) says they fit, then its maximum; smallest first, each size skipped when the "
             "time left cannot cover its predicted cost.",
    "command_buffers": "The same train timing in a child process whose XLA_FLAGS set --xla_gpu_enable_command_buffer (and "
                       "--xla_gpu_graph_min_graph_size); `default` is XLA's own setting, from the sizes run.",
    "cli": "`python -m cartpole_jax train --preset default --seeds N --quiet` timed from outside, interpreter start to exit, "
           "checkpoints and all files included; compile_cache cold = an empty CARTPOLE_JAX_CACHE (compile included).",
    "control_flow": "benchmarks/control_flow.py (see control_flow.json's method).",
}


def _variants(steps: dict) -> dict:
    """Command-buffer variant -> its flags, train records and outcome."""
    out = {}
    for name, step in steps.items():
        if name.startswith("cmdbuf_"):
            part = step.get("result") or {}
            out[name.removeprefix("cmdbuf_")] = {
                "xla_flags": step["xla_flags"], "records": part.get("records", []), "skipped": part.get("skipped", []),
                "returncode": step["returncode"], "killed_at_limit": step["killed_at_limit"],
                "tail": [] if step["returncode"] == 0 else step["tail"],
            }
    return out


def _cli(steps: dict) -> list[dict]:
    return [{k: v for k, v in s.items() if k != "tail" or s["returncode"] != 0} for n, s in steps.items() if n.startswith("cli_")]


def scaling_targets(records: list[dict], cli: list[dict], planner: dict | None, quick: bool) -> list[dict]:
    """Issue 16's targets against what was measured; `met` is None where the measurement is missing."""
    train = {r["num_seeds"]: r for r in records if r["kind"] == "train"}
    bound = {r["num_seeds"]: r for r in records if r["kind"] == "update_bound"}
    t = SCALING_TARGETS
    met = lambda value, target, op: None if value is None else (value >= target if op == ">=" else value <= target)
    row = lambda name, value, target, op, **kw: {"name": name, "value": value, "target": target, "op": op,
                                                 "met": met(value, target, op), **kw}
    one = train.get(1)
    rows = [row("default_1_seed_steps_per_second", one and one["steps_per_second"], t["default_1_seed_steps_per_second"], ">=")]
    for n in sorted(train):
        ratio = train[n]["steps_per_second"] / bound[n]["steps_per_second"] if n in bound else None
        rows.append(row("train_vs_update_bound", ratio, t["train_vs_update_bound"], ">=", num_seeds=n))
    largest = max(train) if train else None
    most = planner and planner.get("max_runs_per_device")
    rows.append(row("largest_count_steps_per_second", largest and train[largest]["steps_per_second"],
                    t["largest_count_steps_per_second"], ">=", num_seeds=largest, planner_max=most))
    cold = next((c for c in cli if c["compile_cache"] == "cold" and c["returncode"] == 0), None)
    rows.append(row("cli_1024_seeds_wall_seconds", cold and cold["wall_seconds"], t["cli_1024_seeds_wall_seconds"], "<=",
                    num_seeds=cold and cold["seeds"]))
    if quick:  # sizes and configs shrunk: the numbers test the script, not the targets
        for r in rows:
            r["met"], r["note"] = None, "quick run: not comparable with the target"
    return rows


def assemble(plan: ScalingPlan, steps: dict, skipped: list, device: str, quick: bool, seconds: float) -> dict:
    """scaling.json's content from the steps' outcomes."""
    sizes = (steps.get("sizes") or {}).get("result") or {}
    cf = (steps.get("control_flow") or {}).get("result")
    records, cli = sizes.get("records", []), _cli(steps)
    skipped = skipped + sizes.get("skipped", [])
    left_out = sizes.get("planner", {}).get("left_out", [])
    skipped += [{"num_seeds": n, "reason": f"above this plan's largest count ({plan.largest})"} for n in left_out]
    outcome = lambda s: {"seconds": s["seconds"], "returncode": s["returncode"], "killed_at_limit": s["killed_at_limit"]}
    meta = {**sizes.get("meta", {}), "device_arg": device, "quick": quick, "total_seconds": round(seconds, 1),
            "plan": dataclasses.asdict(plan), "steps": {n: outcome(s) for n, s in steps.items()}}
    return {"meta": meta, "method": SCALING_METHOD, "targets": scaling_targets(records, cli, sizes.get("planner"), quick),
            "planner": sizes.get("planner"), "records": records, "command_buffers": _variants(steps), "cli": cli,
            "control_flow": cf and {"table": cf["table"], "meta": cf["meta"]}, "skipped": skipped,
            "failed_steps": {n: s["tail"] for n, s in steps.items() if s["returncode"] != 0}}


def write_scaling(result: dict, out: Path) -> None:
    """scaling.json, scaling.md and scaling.png under out."""
    (out / "scaling.json").write_text(json.dumps(result, indent=1, default=float) + "\n")
    (out / "scaling.md").write_text(scaling_markdown(result))
    scaling_plot(result, out / "scaling.png")


def _num(x, digits: int = 0) -> str:
    return "–" if x is None else f"{x:,.{digits}f}"


def scaling_markdown(result: dict) -> str:
    """The report: targets, throughput per seed count, command buffers, the CLI run, control flow."""
    m, recs = result["meta"], result["records"]
    find = lambda kind, n: next((r for r in recs if r["kind"] == kind and r["num_seeds"] == n), None)
    lines = ["# Seeds up to one device's memory (issue 16)", "",
             f"{m.get('device_kind', '?')} ({m.get('backend', '?')}), jax {m.get('versions', {}).get('jax')}, commit {m.get('commit')}; "
             f"{'quick' if m['quick'] else 'full'} run of {m['total_seconds']:.0f} s. Method in scaling.json.", "",
             "## Targets", "", "| target | seeds | value | bound | met |", "|---|---:|---:|---:|---|"]
    for t in result["targets"]:
        digits = 2 if t["name"] in ("train_vs_update_bound", "cli_1024_seeds_wall_seconds") else 0
        met = {True: "yes", False: "**no**", None: t.get("note", "not measured")}[t["met"]]
        lines.append(f"| {t['name']} | {_num(t.get('num_seeds'))} | {_num(t['value'], digits)} | {t['op']} {t['target']:,g} | {met} |")
    p = result["planner"] or {}
    lines += ["", "## Env steps/s by seed count (default preset, vmap)", "",
              f"Memory planner: at most {_num(p.get('max_runs_per_device'))} runs on one device "
              f"({_num(p.get('state_bytes_per_run'))} state bytes per run, capacity {_num(p.get('capacity_bytes'))} bytes).", "",
              "| seeds | full loop | update-only bound | env-only bound | loop / update bound | compile s |",
              "|---:|---:|---:|---:|---:|---:|"]
    for n in sorted({r["num_seeds"] for r in recs}):
        tr, ub, eb = find("train", n), find("update_bound", n), find("env_bound", n)
        ratio = tr["steps_per_second"] / ub["steps_per_second"] if tr and ub else None
        lines.append(f"| {n:,} | {_num(tr and tr['steps_per_second'])} | {_num(ub and ub['steps_per_second'])} | "
                     f"{_num(eb and eb['steps_per_second'])} | {_num(ratio, 2)} | {_num(tr and tr['compile_seconds'], 1)} |")
    lines += command_buffer_lines(result) + cli_lines(result) + control_flow_lines(result)
    if result["skipped"] or result["failed_steps"]:
        lines += ["", "## Skipped or failed", ""] + [f"- {s}" for s in result["skipped"]]
        lines += [f"- step {n} failed: {' / '.join(tail[-3:])}" for n, tail in result["failed_steps"].items()]
    return "\n".join(lines) + "\n"


def command_buffer_lines(result: dict) -> list[str]:
    base = {r["num_seeds"]: r["steps_per_second"] for r in result["records"] if r["kind"] == "train"}
    lines = ["", "## XLA:GPU command buffers", "", "| variant | XLA_FLAGS | seeds | env steps/s | vs XLA's default |",
             "|---|---|---:|---:|---:|"]
    for name, v in result["command_buffers"].items():
        if v["returncode"] != 0 and not v["records"]:
            lines.append(f"| {name} | `{v['xla_flags']}` | – | failed (exit {v['returncode']}) | |")
        for r in v["records"]:
            vs = r["steps_per_second"] / base[r["num_seeds"]] if r["num_seeds"] in base else None
            lines.append(f"| {name} | `{v['xla_flags']}` | {r['num_seeds']:,} | {_num(r['steps_per_second'])} | {_num(vs, 2)} |")
    return lines


def cli_lines(result: dict) -> list[str]:
    lines = ["", "## `cartpole-jax train`, timed from outside", "",
             "| command | compile cache | wall s | compile s | train s | env steps/s (train) |", "|---|---|---:|---:|---:|---:|"]
    for c in result["cli"]:
        lines.append(f"| `{c['command']}` | {c['compile_cache']} | {_num(c['wall_seconds'], 2)} | {_num(c.get('compile_seconds'), 2)} | "
                     f"{_num(c.get('train_seconds'), 2)} | {_num(c.get('env_steps_per_second'))} |")
    return lines


def control_flow_lines(result: dict) -> list[str]:
    cf = result["control_flow"]
    if not cf:
        return ["", "## Control flow", "", "not measured"]
    lines = ["", "## Host-synchronising control flow per vector step", "", f"`{cf['meta']['command']}`", "",
             "| preset | loop | sync ops | conditionals | unknown-trip loops | periodic |", "|---|---|---:|---:|---:|---:|"]
    for r in cf["table"]:
        lines.append(f"| {r['preset']} | {r['loop']} | {r['sync_ops_per_step']} | {r['conditionals_per_step']:g} | "
                     f"{r['unknown_loops_per_step']:g} | {r['periodic_per_step']:.4g} |")
    return lines


def scaling_plot(result: dict, path: Path) -> None:
    """Env steps/s vs seeds: the loop, its two bounds, the command-buffer variants and the 50M target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from benchmarks.report import _line_plot

    series: dict[str, list] = {}
    labels = {"train": "full loop", "update_bound": "update-only bound", "env_bound": "env-only bound"}
    for r in result["records"]:
        series.setdefault(labels[r["kind"]], []).append((r["num_seeds"], r["steps_per_second"]))
    for name, v in result["command_buffers"].items():
        for r in v["records"]:
            series.setdefault(f"full loop, command buffers {name}", []).append((r["num_seeds"], r["steps_per_second"]))
    fig, ax = plt.subplots(figsize=(7, 4.8))
    if series:
        _line_plot(ax, series, "seeds (runs on one device)")
    ax.axhline(SCALING_TARGETS["largest_count_steps_per_second"], color="grey", ls="--", lw=1, label="50M target")
    ax.set_title(f"default preset on {result['meta'].get('device_kind', '?')}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.rebuild:
        rebuild(Path(args.out), args.external)
        return 0
    if args.scaling:  # the parent never starts jax: its children need the whole GPU
        scaling(SCALING_PLANS[(args.device, args.quick)], Path(args.out), args.device, args.quick, args.budget)
        return 0
    select_backend(args.device)
    if args.part:
        run_part(args)
        return 0
    benchmark(PLANS[(args.device, args.quick)], Path(args.out), budget_seconds=args.budget, external=args.external,
              quick=args.quick, device=args.device, log=lambda s: print(s, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
