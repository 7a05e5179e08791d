"""`cartpole-jax train`: N seeds of one config in one compiled call, written to a run directory.

Checkpoints are taken between chunks; Ctrl-C (SIGTERM) stops at the next chunk boundary, saves and
exits 130 (143); a non-finite loss stops the run, keeps the last good checkpoint and records the
failure (exit 1). The run directory is locked for the whole run (`runlock`).
"""

from __future__ import annotations

import shlex
import shutil
import sys
from contextlib import ExitStack
from pathlib import Path

from .. import distributed, runlock, tracking
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
    remove_outputs,
)
from .stopping import stop_on_signals


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train seeds S..S+N-1 and write a run directory")
    add_config_flags(p)
    add_seed_flags(p)
    add_out_flags(p)
    p.add_argument("--resume-if-exists", action="store_true",
                   help="if --out holds this run (same config and seeds), continue it from its checkpoint, or do nothing "
                        "if it is finished; otherwise start as usual (for job scripts that are requeued)")
    distributed.add_flags(p)
    tracking.add_flag(p)


def main(args) -> int:
    # a logger that is not installed fails before anything is written or compiled (args built by hand may lack --log)
    log = tracking.parse(getattr(args, "log", []))
    distributed.setup(args)
    preset, cfg = config_from_args(args)
    from .. import checkpoint
    from ..program import pick_devices

    pick_devices(args.devices, args.seeds)  # a bad --devices fails before anything is written
    seeds = list(range(args.seed, args.seed + args.seeds))
    with ExitStack() as held:
        # Process 0 alone checks, creates, locks and starts (or takes over) the run directory; the others take its verdict.
        out, verdict = distributed.on_writer(_claim, args, preset, cfg, seeds, held)
        out = Path(out)
        if verdict == "finished":
            return 0
        if verdict == "resume":
            from .resume import continue_run

            return continue_run(out, cfg, args.quiet, log)
        meta = checkpoint.make_meta(cfg, preset, seeds, [{} for _ in seeds], args.devices, args.batching)
        return train_into(out, cfg, meta, args.quiet, log=log, started=getattr(args, "started", None))


def _claim(args, preset: str, cfg: Config, seeds: list[int], held: ExitStack) -> list:
    """[run directory, verdict]: checked, created and locked (until `held` closes); a fresh run started in it
    unless --resume-if-exists found this run there (verdict "resume" or "finished"; else "start")."""
    from .. import planner
    from ..program import pick_devices
    from .resume import same_run

    out = args.out or default_out(preset)
    force = args.force or (args.resume_if_exists and same_run(Path(out), preset, cfg))
    check_out_dir(out, force, cfg.num_chunks)  # cheap checks before the planner traces
    check_fit([planner.make_plan(cfg, args.seeds, pick_devices(args.devices, args.seeds), args.batching)])
    out = prepare_out_dir(out, force, cfg.num_chunks)
    held.enter_context(runlock.hold(out, "cartpole-jax train"))
    verdict = "start"
    if args.resume_if_exists:
        from .resume import verdict as resume_verdict

        verdict = resume_verdict(out, preset, cfg, seeds, args.batching)
    if verdict == "finished":
        print(f"cartpole-jax: {out}: this run is already finished (results in summary.json); nothing to do", file=sys.stderr)
    if verdict == "start":
        _start(out, preset, cfg, force)
    return [str(out), verdict]


def _start(out: Path, preset: str, cfg: Config, force: bool) -> None:
    """Empty the locked run directory of an earlier run's files and write config.json."""
    from .. import checkpoint
    from ..outputs import write_json

    check_out_dir(out, force)  # again under the lock: another command may have filled it meanwhile
    # With --force, an earlier run's checkpoints would be resumed instead of (or pruned before) ours,
    # and its summary.json would say a run is finished that is not.
    remove_outputs(out)
    shutil.rmtree(checkpoint.directory(out), ignore_errors=True)
    # Written first so that a run killed at any moment can be resumed from its checkpoints.
    write_json(out / "config.json", {"preset": preset, **cfg.to_dict()})


def train_into(out: Path, cfg: Config, meta: dict, quiet: bool, resume: tuple | None = None, log: tuple[str, ...] = (),
               started: float | None = None) -> int:
    """Train (or continue) the run described by checkpoint `meta` in `out`, streaming to the loggers `log`; the exit code.

    started: perf_counter at the process's start, for summary.json's startup_seconds.
    """
    from .. import checkpoint
    from ..driver import train_runs
    from ..outputs import warm_up_outputs, write_run

    seeds, preset = meta["seeds"], meta["preset"]
    title = f"{preset}: {len(seeds)} seed(s)"
    writer = distributed.is_writer()  # in a multi-process job only process 0 writes, shows progress and prints
    quiet = quiet or not writer

    bar = progress_bar(quiet, cfg.num_chunks, f"{preset} ×{len(seeds)}")
    warming = warm_up_outputs()
    specs = tracking.run_specs(cfg.to_dict(), preset, seeds, meta["grid"])
    tracker = tracking.Tracker(out if writer else None, log, specs, fresh=resume is None)
    with stop_on_signals() as stop:  # held until the last file is written: a signal never cuts a write short
        with checkpoint.BackgroundSaver() as saver, bar as progress, tracker:
            from ..results import env_steps_done

            progress = tracking.chain(progress, tracker.feed(range(len(seeds)), env_steps_done(cfg, resume[1] if resume else 0)))

            def after_chunk(done: int, state, program) -> bool:
                due = cfg.checkpoint_every > 0 and done % cfg.checkpoint_every == 0
                stopping = distributed.anyone(stop.is_set())  # a signal to any process stops all at this chunk
                if due or stopping:
                    host = checkpoint.to_host(state, len(seeds))  # gathered by every process
                    if writer:
                        saver.submit(out, host, done, meta, cfg.keep_checkpoints)
                return not stopping

            try:
                result = train_runs(
                    cfg, seeds, meta["grid"], preset=preset, devices=meta["devices"], batching=meta["batching"],
                    progress=progress, resume=resume, after_chunk=after_chunk,
                )
            except NonFiniteError as err:
                saver.wait()  # the last good checkpoint is on disk before the failure names it
                return _record_failure(out, err) if writer else fail(str(err), code=1)
        if result.interrupted:
            if not writer:
                return stop.code
            print(
                f"cartpole-jax: interrupted ({stop.name}) after chunk {result.chunks_done}/{cfg.num_chunks}; checkpoint saved. "
                f"Resume with: cartpole-jax resume {shlex.quote(str(out))}",
                file=sys.stderr,
            )
            return stop.code
        warming.join()
        summary = write_run(out, result, title, started) if writer else None
    if not quiet:
        print_table(summary)
        print(f"run directory: {out}")
    if stop.is_set():  # it came during the last chunk or the final writes: both were completed
        print(f"cartpole-jax: {stop.name} came as the run ended; it is finished and all its files are written", file=sys.stderr)
        return stop.code
    return 0


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
