"""`cartpole-jax` command line: parse flags, call library code, turn errors into one line and an exit code.

Exit codes: 0 done; 1 a run failed (non-finite loss) or `plan` says it does not fit; 2 bad input, a bad
checkpoint or policy file; 130 interrupted (a checkpoint is saved and the resume command printed).
"""

from __future__ import annotations

import argparse
import sys

from .commands import config as config_cmd
from .commands import evaluate as eval_cmd
from .commands import plan as plan_cmd
from .commands import render as render_cmd
from .commands import resume as resume_cmd
from .commands import sweep as sweep_cmd
from .commands import train as train_cmd
from .commands.common import fail

COMMANDS = {
    "config": config_cmd,
    "train": train_cmd,
    "resume": resume_cmd,
    "eval": eval_cmd,
    "render": render_cmd,
    "sweep": sweep_cmd,
    "plan": plan_cmd,
}


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line and exit code 2."""

    def error(self, message: str):
        sys.exit(fail(message.splitlines()[0]))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="cartpole-jax", description="DQN on CartPole-v1, compiled end to end with JAX.")
    from . import __version__

    parser.add_argument("--version", action="version", version=f"cartpole-jax {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for module in COMMANDS.values():
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .errors import CheckpointError, NonFiniteError, PolicyError, UsageError, render
    from .host import use_compilation_cache, use_cpu_cores

    use_cpu_cores()  # before any command touches jax: seeds on CPU then spread over all cores
    use_compilation_cache()
    try:
        return COMMANDS[args.command].main(args)
    except UsageError as err:  # the library names the argument; the CLI owns the flag
        return fail(render(err.message, err.param and err.param.replace("_", "-"), prefix="--"))
    except (CheckpointError, PolicyError) as err:
        return fail(str(err))
    except NonFiniteError as err:
        return fail(str(err), code=1)
    except KeyboardInterrupt:
        print("cartpole-jax: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
