"""Errors by meaning; jax-free, so the CLI and the numpy-only policy module import them cheaply.

The library never names a command-line flag: an error about one argument carries its name in
`param`, and the CLI (which owns flags and exit codes) renders it as the flag.
"""

from __future__ import annotations

import errno


class UsageError(ValueError):
    """Bad input: a config value, an argument, a path. One line naming what is wrong and what is allowed."""

    def __init__(self, message: str, param: str | None = None):
        self.message, self.param = message, param
        super().__init__(render(message, param) if param else message)


def render(message: str, param: str | None, prefix: str = "") -> str:
    """`param message` (or `param: ...` where the message starts with a colon), param prefixed as asked."""
    if not param:
        return message
    return f"{prefix}{param}{'' if message.startswith(':') else ' '}{message}"


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, incomplete, corrupt, or made by another config or version."""


class PolicyError(ValueError):
    """policy.npz is missing, foreign or malformed."""


class DistributedError(RuntimeError):
    """A multi-process job that could not form (no coordinator) or broke (a process stopped): one line."""


class NonFiniteError(RuntimeError):
    """A run's loss became NaN or infinite; `result` holds what all runs reached (the failing chunk included)."""

    def __init__(self, run_index: int, seed: int, env_step: int, result=None):
        self.run_index, self.seed, self.env_step, self.result = run_index, seed, env_step, result
        super().__init__(f"seed {seed}: loss became non-finite at env step {env_step}")


def no_space(err: BaseException | None) -> bool:
    """Whether `err`, or an error it was raised from, says the disk or the quota is full.

    orbax and tensorstore wrap an OSError in their own types, or keep only its text.
    """
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if any(text in str(err) for text in ("No space left on device", "Disk quota exceeded")):
            return True
        err = err.__cause__ or err.__context__
    return False
