"""`cartpole-jax tune`: Optuna search over config fields; each batch of trials × seeds trains in one compiled call.

The study lives in SQLite (default DIR/study.db), so a second `tune` with the same --out continues it up to
--trials finished trials, after a Ctrl-C or a SIGKILL alike; optuna-dashboard opens the same file.
"""

from __future__ import annotations

import json
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from .. import runlock
from .common import (
    add_config_flags,
    add_out_flags,
    add_seed_flags,
    check_fit,
    check_out_dir,
    config_from_args,
    default_out,
    positive_int,
    prepare_out_dir,
)
from .stopping import stop_on_signals

STUDY_DB = "study.db"
FILES = ("best.toml", "trials.csv", "tune_summary.json", "optimization_history.png", "param_importances.png")


def add_parser(sub) -> None:
    p = sub.add_parser("tune", help="search hyperparameters with Optuna, a batch of trials × seeds per compiled call")
    add_config_flags(p)
    p.add_argument("--space", action="append", default=[], metavar="KEY=SPEC",
                   help="a field to search (repeatable): lo:hi, log:lo:hi, int:lo:hi or choice:a,b,... "
                        "(static fields such as hidden_sizes take choices only)")
    p.add_argument("--space-file", metavar="FILE", help='TOML file with a [space] table of KEY = "SPEC"')
    p.add_argument("--trials", type=positive_int("--trials"), default=32, help="finished trials the study should hold (default 32)")
    p.add_argument("--batch", type=positive_int("--batch"), default=16, help="trials asked and trained together (default 16)")
    p.add_argument("--objective", choices=("final_return", "solved_fraction", "auc"), default="final_return",
                   help="maximised over trials, each value aggregated over --seeds (default final_return)")
    p.add_argument("--pruner", choices=("median", "halving", "none"), default="median",
                   help="stops trials early between chunks; a pruned trial's runs go on in their program, ignored (default median)")
    p.add_argument("--storage", metavar="URL", help="Optuna storage (default sqlite:///DIR/study.db)")
    p.add_argument("--study-name", default="cartpole-jax-tune", help="study name in the storage (default cartpole-jax-tune)")
    add_seed_flags(p)
    add_out_flags(p)


def main(args) -> int:
    from .. import tune
    from ..planner import make_plan
    from ..program import pick_devices

    preset, cfg = config_from_args(args)
    space = tune.parse_space(args.space, args.space_file)
    tune.check_space(cfg, space)
    runs = args.batch * args.seeds
    out = Path(args.out or default_out(f"tune-{preset}"))
    storage = args.storage or f"sqlite:///{out.absolute() / STUDY_DB}"
    own_study = args.storage is None and (out / STUDY_DB).is_file()  # continuing needs no --force
    check_out_dir(out, args.force or own_study)
    check_fit([make_plan(c, runs, pick_devices(args.devices, runs), args.batching) for c in tune.static_configs(cfg, space)])
    out = prepare_out_dir(out, args.force or own_study)
    seeds = list(range(args.seed, args.seed + args.seeds))
    setup = tune.setup_attrs(preset, cfg, space, seeds, args.objective)
    with runlock.hold(out, "cartpole-jax tune"):  # also keeps a second tune off this study's running trials
        if args.force:
            _remove_outputs(out, with_study=args.storage is None)
        pruner = tune.make_pruner(args.pruner, cfg)
        study = tune.open_study(storage, args.study_name, setup, seed=args.seed, pruner=pruner, fresh=args.force)
        return _tune(args, out, study, preset, cfg, space, seeds, storage)


def _remove_outputs(out: Path, with_study: bool) -> None:
    """--force: an earlier tune's files (and its study, when it lives in DIR) go, so nothing of it stays behind."""
    for name in (*FILES, *((STUDY_DB,) if with_study else ())):
        (out / name).unlink(missing_ok=True)


def _tune(args, out: Path, study, preset: str, cfg, space: dict, seeds: list[int], storage: str) -> int:
    """Run the batches, then write the outputs; the exit code."""
    from .. import tune

    retried = tune.requeue_stale(study)
    if retried:
        print(f"cartpole-jax: tune: {retried} trial(s) of an unfinished batch were left running (killed?): "
              "marked failed and asked again", file=sys.stderr)
    t0 = time.perf_counter()
    with stop_on_signals("stopping after this chunk; finished trials are kept") as stop:  # held until the files are written
        with _progress_bar(args.quiet, args.trials, study) as show:
            tuner = tune.Tuner(study, cfg, space, seeds, args.objective, preset, args.devices, args.batching,
                               progress=show, stop=stop.is_set)
            finished = tuner.run(args.trials, args.batch)
        summary = _write(out, study, tuner, storage, args, retried, time.perf_counter() - t0)
    _report(summary, out, args.quiet)
    if not finished:
        print(f"cartpole-jax: tune: stopped by {stop.name}; run the same command to continue (the unfinished batch's trials "
              "are asked again)", file=sys.stderr)
    elif stop.is_set():
        print(f"cartpole-jax: tune: {stop.name} came as the study ended; it is finished and all its files are written", file=sys.stderr)
    return stop.code if stop.is_set() else 0


def _write(out: Path, study, tuner, storage: str, args, retried: int, wall: float) -> dict:
    """trials.csv, best.toml, the plots and tune_summary.json (written last: it lists the plots)."""
    from .. import tune
    from ..outputs import write_atomic, write_json

    write_atomic(out / "trials.csv", tune.trials_csv(study, tuner.space))
    best = tune.best_trial(study, args.objective)
    if best is not None:
        cfg = tune.best_config(tuner.cfg, tuner.space, best.params)
        write_atomic(out / "best.toml", tune.config_toml(tuner.preset, cfg, _comments(study, best, args, out)))
    plots = tune.write_plots(out, study)
    programs = tuner.programs
    keys = {(repr(sorted(p["static"].items())), p["runs"]) for p in programs}
    summary = {
        "study": args.study_name, "storage": storage, **{k: study.user_attrs[k] for k in ("objective", "objective_meaning", "tie_break")},
        "space": study.user_attrs["space"], "preset": tuner.preset, "seeds": {"first": tuner.seeds[0], "count": len(tuner.seeds)},
        "trials": {"target": args.trials, **tune.counts(study), "requeued_at_start": retried},
        "best": None if best is None else {
            "number": best.number, "value": best.value, "params": tune.trial_values(tuner.space, best.params),
            **tune.trial_scores(best),
        },
        "this_invocation": {
            "batches": tuner.batches, "batch_size": args.batch, "calls": programs,
            "num_programs": len(keys), "num_programs_compiled": sum(p["compiled"] for p in programs),
            "compile_seconds": round(sum(p["compile_seconds"] for p in programs), 3),
            "train_seconds": round(sum(p["train_seconds"] for p in programs), 3), "wall_seconds": round(wall, 3),
        },
        "plots": plots,
    }
    write_json(out / "tune_summary.json", summary)
    return summary


def _comments(study, best, args, out: Path) -> list[str]:
    """best.toml's header: where it came from, the objective and its value, how to run it."""
    from .. import tune

    attrs = study.user_attrs
    tie = attrs["tie_break"]
    return [
        f"cartpole-jax tune: best trial {best.number} of study {args.study_name!r} ({args.storage or out / STUDY_DB})",
        f"objective {attrs['objective']} = {best.value:.6g}: {attrs['objective_meaning']}, over {attrs['seeds'][1]} seed(s); "
        f"ties broken by {tie} = {tune.trial_scores(best).get(tie, float('nan')):.6g}",
        f"run it with: cartpole-jax train --config {out / 'best.toml'}",
    ]


def _report(summary: dict, out: Path, quiet: bool) -> None:
    if quiet:
        return
    t, best, inv = summary["trials"], summary["best"], summary["this_invocation"]
    print(f"{t['finished']}/{t['target']} trials finished ({t['complete']} complete, {t['pruned']} pruned, {t['fail']} failed); "
          f"{inv['batches']} batch(es) here in {inv['wall_seconds']:.1f} s, {inv['num_programs_compiled']} program(s) compiled")
    if best:
        print(f"best: trial {best['number']}, {summary['objective']} = {best['value']:.4g}, " +
              ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={json.dumps(v)}" for k, v in best["params"].items()))
    for name, note in summary["plots"].items():
        if note != "written":
            print(f"{name}: {note}")
    print(f"tune directory: {out}")


@contextmanager
def _progress_bar(quiet: bool, target: int, study):
    """Yields a callback for Tuner(progress=...): a rich bar over --trials on stderr with trials finished,
    pruned and the best so far, updated per chunk."""
    if quiet:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..tune import counts

    bar = Progress(TextColumn("[bold]tune"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                   TimeElapsedColumn(), console=Console(stderr=True))
    task = bar.add_task("tune", total=target, completed=min(counts(study)["finished"], target), info="compiling…")

    def update(p) -> None:
        best = "-" if p.best_value is None else f"{p.best_value:.4g} (#{p.best_number})"
        group = f" group {p.group}/{p.num_groups}" if p.num_groups > 1 else ""
        bar.update(task, completed=min(p.finished, target),
                   info=f"batch {p.batch}{group} chunk {p.chunk}/{p.num_chunks}  pruned {p.pruned}  best {best}")

    with bar:
        yield update
        bar.update(task, completed=min(counts(study)["finished"], target))  # the last batch's tells came after its last chunk
