"""Keep jax's runtime log lines off a multi-process job's stderr, so that a broken job ends in one line.

jax's distributed runtime (C++) writes its own log lines straight to file descriptor 2, and when it
decides the job is lost it logs a multi-line `F` message and aborts the process (exit 134): no
Python code runs then, so no handler in this process can replace that message. Instead `route`
sends this process's fd 2 through a pipe to a small helper process (`main`). The helper forwards
everything as it comes, except the runtime's lines; and if the runtime ended the process before our
own error line was written, it writes one line in its place once the pipe closes.
CARTPOLE_JAX_RUNTIME_LOG=1 keeps the runtime's lines (for debugging a cluster).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

KEEP_ENV = "CARTPOLE_JAX_RUNTIME_LOG"
OURS = b"cartpole-jax: error:"
KEPT = (OURS, b"Traceback (most recent call last):")  # never a runtime message's continuation
# `E1202 17:45:42.089109   16955 coordination_service_agent.cc:289] message` (absl's log prefix)
RUNTIME_LINE = re.compile(rb"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ [^\]\s]+:\d+\] ")
MAYBE_RUNTIME = re.compile(rb"^[IWEF](\d{0,4}$|\d{4} )")  # could still become a runtime line
STACK_LINE = re.compile(rb"^(\*\*\* |\s+@\s+0x)")  # the stack trace after an F line, however late
# A runtime message is written in one go: lines within GAP seconds of a dropped one are its continuation.
GAP = 0.25
RPC = re.compile(rb"^RPC: \S*/(\w+)")
HINTS = {b"RegisterTask": "not every process joined in time", b"PollForError": "another process is gone",
         b"Heartbeat": "a process stopped answering"}


class Filter:
    """Bytes of a process's stderr in, the bytes to show out: runtime lines dropped, the rest as it comes."""

    def __init__(self, process: str):
        self.process = process  # "process I of N", for the line written in the runtime's place
        self.line = b""  # the current line's bytes not yet forwarded or dropped
        self.mode = "start"  # of the current line: start (undecided), pass, drop
        self.last_drop = -1e9
        self.status = b""  # what the runtime's fatal message said
        self.rpc = b""
        self.fatal = self.ours = False

    def feed(self, data: bytes, now: float) -> bytes:
        return b"".join(self._piece(piece, now) for piece in data.splitlines(keepends=True))

    def _piece(self, piece: bytes, now: float) -> bytes:
        ended = piece.endswith((b"\n", b"\r"))
        if self.mode == "pass":  # the rest of a line already shown
            self.mode = "start" if ended else "pass"
            return piece
        self.line += piece
        if self.mode == "start" and not ended and self._undecided(now):
            return b""  # hold the line until its first bytes say what it is
        if self.mode == "start":
            self.mode = "drop" if self._runtime(now) else "pass"
        line, self.line = self.line, b""
        if self.mode == "drop":
            self.last_drop = now
            self._learn(line)
            self.mode = "start" if ended else "drop"
            return b""
        self.ours = self.ours or line.startswith(OURS)
        self.mode = "start" if ended else "pass"
        self.last_drop = -1e9  # a line of ours ends the runtime's message: what follows is ours too
        return line

    def _undecided(self, now: float) -> bool:
        """Whether the bytes held so far can't yet tell a runtime line (or its continuation) from ours."""
        if now - self.last_drop < GAP:  # a continuation, unless it becomes one of KEPT
            return any(len(self.line) < len(k) and k.startswith(self.line) for k in KEPT)
        return bool(MAYBE_RUNTIME.match(self.line)) and not RUNTIME_LINE.match(self.line)

    def _runtime(self, now: float) -> bool:
        if RUNTIME_LINE.match(self.line) or STACK_LINE.match(self.line):
            return True
        return now - self.last_drop < GAP and not self.line.startswith(KEPT)

    def _learn(self, line: bytes) -> None:
        if line.startswith(b"F") and RUNTIME_LINE.match(line):
            self.fatal = True
            self.status = line.partition(b"absl::Status: ")[2].strip() or self.status
        elif m := RPC.match(line):
            self.rpc = self.rpc or m.group(1)

    def finish(self) -> bytes:
        """What is left when the process is gone: a held partial line, and our line if the runtime ended it."""
        rest = b"" if self.mode == "drop" or RUNTIME_LINE.match(self.line) else self.line
        if not self.fatal or self.ours:
            return rest
        status = self.status.decode(errors="replace").split(". ")[0].rstrip(".: ")[:200] or "no status"
        where = f", in {self.rpc.decode()}: {HINTS[self.rpc]}" if self.rpc in HINTS else ""
        return rest + (f"cartpole-jax: error: {self.process}: jax's distributed runtime ended the job ({status}{where}); "
                       "checkpoints already saved are kept\n").encode()


def route(process_index: int, num_processes: int) -> None:
    """From now on, this process's stderr (fd 2) goes through a `Filter` in a helper process."""
    if os.environ.get(KEEP_ENV, "").strip() == "1":
        return
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parent.parent), os.environ.get("PYTHONPATH")]))}
    try:
        real = os.dup(2)
        read, write = os.pipe()
    except OSError:  # no stderr to filter
        return
    try:
        subprocess.Popen(
            [sys.executable, "-m", "cartpole_jax.runtime_log", f"process {process_index} of {num_processes}"],
            stdin=read, stdout=real, stderr=subprocess.DEVNULL, env=env, start_new_session=True, close_fds=True,
        )
        sys.stderr.flush()
        os.dup2(write, 2)
    except OSError:  # no helper: the runtime's lines stay, nothing else changes
        pass
    finally:
        for fd in (read, write, real):
            os.close(fd)


def main() -> None:
    """The helper: stdin is the job process's stderr, stdout the terminal or file it was going to."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C or a scheduler's SIGTERM is for the job process:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # this one ends when that one's stderr closes
    f = Filter(sys.argv[1] if len(sys.argv) > 1 else "this process")
    while data := os.read(0, 65536):
        _write(f.feed(data, time.monotonic()))
    _write(f.finish())


def _write(data: bytes) -> None:
    while data:
        data = data[os.write(1, data):]


if __name__ == "__main__":
    main()
