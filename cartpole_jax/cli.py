"""`cartpole-jax` command line: parse flags, call library code, turn errors into one line and an exit code.

Exit codes: 0 done; 1 a run failed (non-finite loss), `plan` says it does not fit, the disk is full
(what was written before stays; no half-written file is left), or a multi-process job could not form
or lost a process (checkpoints saved before stay); 2 bad input, a bad checkpoint or policy
file, a run directory in use by another command, or a finished run to resume; 130 (SIGINT, Ctrl-C) or
143 (SIGTERM) stopped: a checkpoint is saved and the resume command printed (or, when the signal came
as the run ended, the run is finished and all its files are written).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import signal
import sys
import threading
import time

from . import distributed
from .commands import compare as compare_cmd
from .commands import config as config_cmd
from .commands import evaluate as eval_cmd
from .commands import plan as plan_cmd
from .commands import render as render_cmd
from .commands import resume as resume_cmd
from .commands import sweep as sweep_cmd
from .commands import train as train_cmd
from .commands import tune as tune_cmd
from .commands.common import config_from_args, fail

STARTED = time.perf_counter()  # as the CLI starts: summary.json's startup_seconds count from here

COMMANDS = {
    "config": config_cmd,
    "train": train_cmd,
    "resume": resume_cmd,
    "eval": eval_cmd,
    "render": render_cmd,
    "sweep": sweep_cmd,
    "plan": plan_cmd,
    "compare": compare_cmd,
    "tune": tune_cmd,
}


EXIT_CODES = """exit codes:
  0    done
  1    a run failed (non-finite loss), plan says it does not fit, no space left on device, or a
       multi-process job could not form or lost a process (docs/multihost.md)
  2    bad input: flags, config, paths, a damaged checkpoint or policy file, a run directory in use,
       resume of a finished run
  130  stopped by SIGINT (Ctrl-C): checkpoint saved, resume command printed
  143  stopped by SIGTERM: the same"""


class Terminated(KeyboardInterrupt):
    """SIGTERM before or after a run's own handler (commands.stopping) is in place."""


def _terminate(signum, frame):
    raise Terminated


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line and exit code 2."""

    def error(self, message: str):
        sys.exit(fail(message.splitlines()[0]))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="cartpole-jax", description="DQN on CartPole-v1, compiled end to end with JAX.",
                     epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    from . import __version__

    parser.add_argument("--version", action="version", version=f"cartpole-jax {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for module in COMMANDS.values():
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .errors import CheckpointError, NonFiniteError, PolicyError, UsageError, no_space, render

    command = COMMANDS[args.command]
    args.started = STARTED
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if main_thread else None
    try:
        if hasattr(args, "sets"):
            config_from_args(args)  # bad config is one line in a fraction of a second, before jax loads
        if getattr(command, "USES_JAX", True):
            _start_jax()
        return command.main(args)
    except UsageError as err:  # the library names the argument; the CLI owns the flag
        return fail(render(err.message, err.param and err.param.replace("_", "-"), prefix="--"))
    except (CheckpointError, PolicyError) as err:
        return fail(str(err))
    except NonFiniteError as err:
        return fail(str(err), code=1)
    except KeyboardInterrupt as err:
        print(f"cartpole-jax: {'terminated' if isinstance(err, Terminated) else 'interrupted'}", file=sys.stderr)
        return 143 if isinstance(err, Terminated) else 130
    except Exception as err:
        lost = distributed.broken(err)
        if lost is not None:  # jax's exit barrier would wait for the lost process, then abort with a traceback
            distributed.leave(fail(str(lost), code=1))
        if no_space(err):
            return fail(f"no space left on device{_where(err)}; what was written before is kept", code=1)
        raise
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


def _start_jax() -> None:
    """Set jax up before any command touches it: seeds on CPU spread over all cores, the compile cache."""
    from . import executables
    from .host import use_compilation_cache, use_cpu_cores

    use_cpu_cores()
    folder = use_compilation_cache(warn=lambda text: print(f"cartpole-jax: warning: {text}", file=sys.stderr))
    executables.use(None if folder is None else os.path.join(folder, "programs"))


def _where(err: BaseException) -> str:
    """' (writing FILE)' for an OSError that names its file, else ''."""
    name = getattr(err, "filename", None)
    return f" (writing {name})" if name else ""


def run() -> None:
    """The `cartpole-jax` entry point: `main`, then an exit that skips the interpreter's teardown.

    Tearing down jax, XLA's CPU client, orbax and matplotlib takes ~1.2 s after the last file is
    written. The quick exit is registered before any library's exit handler, so it runs after all of
    them (jax's distributed shutdown, trackers) and after Python has joined the non-daemon threads.
    """
    done: list[int] = []
    atexit.register(_quick_exit, done)
    try:
        code = main()
    except SystemExit as stop:  # argparse: --help, --version, a usage error
        code = stop.code
    if isinstance(code, int) or code is None:
        done.append(code or 0)
    sys.exit(code)


def _quick_exit(done: list[int]) -> None:
    if not done:  # main raised: let Python print the traceback and exit its own way
        return
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe or stream: nothing more can reach it
            stream.flush()
    os._exit(done[0])


if __name__ == "__main__":
    run()
