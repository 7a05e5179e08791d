"""One command at a time per run directory: an exclusive lock on RUN_DIR/.lock held for the whole run.

Two `train --force` or two `resume` on one directory would interleave their checkpoints and files;
the second is refused with a one-line UsageError naming the holder (pid, host, command). The lock is
an `fcntl.flock`, so the kernel releases it when its holder exits, however it exits; the holder removes
the file as it ends (a killed one leaves it behind, harmless: only the flock counts).
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import UsageError

NAME = ".lock"


@contextmanager
def hold(run_dir: str | Path, command: str) -> Iterator[None]:
    """Hold RUN_DIR's lock while the block runs; raise UsageError at once if another process holds it."""
    try:
        import fcntl
    except ImportError:  # not POSIX (Windows): run unlocked rather than not at all
        yield
        return
    path = Path(run_dir) / NAME
    fd = _acquire(path, fcntl)
    try:
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "command": command}).encode())
        yield
    finally:
        path.unlink(missing_ok=True)  # while still held, so the directory is left as it was found
        os.close(fd)  # releases the lock


def _acquire(path: Path, fcntl) -> int:
    """An open, locked descriptor of `path`, still linked under that name (a holder unlinks it as it ends)."""
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as err:
            raise UsageError(f"{path.parent}: cannot create its lock file ({err.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _holder(fd)
            os.close(fd)
            raise UsageError(f"{path.parent}: in use by {holder}; wait for it to end, or stop it") from None
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                os.ftruncate(fd, 0)
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # we locked a file its last holder had already unlinked: try the new one


def _holder(fd: int) -> str:
    """'pid P on host H (COMMAND)' from the lock file, as far as its holder wrote it."""
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"pid {info['pid']} on host {info['host']} ({info['command']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"
