"""`cartpole-jax train`: N seeds of one config in one compiled call, written to a run directory.

Checkpoints are taken between chunks; Ctrl-C stops at the next chunk boundary, saves and exits 130;
a non-finite loss stops the run, keeps the last good checkpoint and records the failure (exit 1).
"""

from __future__ import annotations

import shlex
import shutil
import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

from .. import distributed
from ..config import Config
from ..errors import NonFiniteError
from .common import (
    add_config_flags,
    add_out_flags,
    add_seed_flags,
    check_fit,
    check_out_dir,
    config_from_args,
    default_out,
    fail,
    prepare_out_dir,
    print_table,
    progress_bar,
)


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train seeds S..S+N-1 and write a run directory")
    add_config_flags(p)
    add_seed_flags(p)
    add_out_flags(p)
    distributed.add_flags(p)


def main(args) -> int:
    distributed.setup(args)
    preset, cfg = config_from_args(args)
    from .. import checkpoint, planner
    from ..outputs import write_json
    from ..program import pick_devices

    pick_devices(args.devices, args.seeds)  # a bad --devices fails before anything is written
    check_out_dir(args.out or default_out(preset), args.force)  # cheap checks before the planner traces
    check_fit([planner.make_plan(cfg, args.seeds, pick_devices(args.devices, args.seeds), args.batching)])
    out = prepare_out_dir(args.out or default_out(preset), args.force)
    # With --force, an earlier run's checkpoints would be resumed instead of (or pruned before) ours.
    shutil.rmtree(checkpoint.directory(out), ignore_errors=True)
    # Written first so that a run killed at any moment can be resumed from its checkpoints.
    write_json(out / "config.json", {"preset": preset, **cfg.to_dict()})
    seeds = list(range(args.seed, args.seed + args.seeds))
    meta = checkpoint.make_meta(cfg, preset, seeds, [{} for _ in seeds], args.devices, args.batching)
    return train_into(out, cfg, meta, args.quiet)


def train_into(out: Path, cfg: Config, meta: dict, quiet: bool, resume: tuple | None = None) -> int:
    """Train (or continue) the run described by checkpoint `meta` in `out`; the command's exit code."""
    from .. import checkpoint
    from ..driver import train_runs
    from ..outputs import write_run

    seeds, preset = meta["seeds"], meta["preset"]
    title = f"{preset}: {len(seeds)} seed(s)"

    bar = progress_bar(quiet, cfg.num_chunks, f"{preset} ×{len(seeds)}")
    with _stop_on_sigint() as stop, checkpoint.BackgroundSaver() as saver, bar as progress:

        def after_chunk(done: int, state, program) -> bool:
            due = cfg.checkpoint_every > 0 and done % cfg.checkpoint_every == 0
            if due or stop.is_set():
                saver.submit(out, checkpoint.to_host(state, len(seeds)), done, meta, cfg.keep_checkpoints)
            return not stop.is_set()

        try:
            result = train_runs(
                cfg, seeds, meta["grid"], preset=preset, devices=meta["devices"], batching=meta["batching"], progress=progress,
                resume=resume, after_chunk=after_chunk,
            )
        except NonFiniteError as err:
            saver.wait()  # the last good checkpoint is on disk before the failure names it
            return _record_failure(out, err)
    if result.interrupted:
        print(
            f"cartpole-jax: interrupted after chunk {result.chunks_done}/{cfg.num_chunks}; checkpoint saved. "
            f"Resume with: cartpole-jax resume {shlex.quote(str(out))}",
            file=sys.stderr,
        )
        return 130
    summary = write_run(out, result, title)
    if not quiet:
        print_table(summary)
        print(f"run directory: {out}")
    return 0


@contextmanager
def _stop_on_sigint():
    """A flag the first Ctrl-C sets (the run stops at the next chunk boundary); a second one aborts."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum, frame):
        stop.set()
        print("\ncartpole-jax: stopping after this chunk (Ctrl-C again to abort)", file=sys.stderr)
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


def _record_failure(out: Path, err: NonFiniteError) -> int:
    """Write metrics.csv and summary.json with the failure; keep the checkpoints, write no policy."""
    from .. import checkpoint
    from ..outputs import metrics_csv, write_atomic, write_json

    result = err.result
    summary = result.summary()
    summary["failed"] = {"seed": err.seed, "run": err.run_index, "env_step": err.env_step, "reason": "non-finite loss"}
    write_atomic(out / "metrics.csv", metrics_csv(result.metrics, result.seeds, result.grid))
    write_json(out / "summary.json", summary)
    kept = checkpoint.steps(out)
    where = f"last good checkpoint: chunk {kept[-1]}" if kept else "no checkpoint was taken before it"
    return fail(f"{err}; run stopped ({where}; failure recorded in {out / 'summary.json'})", code=1)
