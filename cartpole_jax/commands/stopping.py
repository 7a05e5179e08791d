"""SIGINT and SIGTERM during a run: stop at the next chunk boundary, save, say how to resume, exit 128 + signal.

The handlers stay installed until the command's files are all written, so a signal never lands in
the middle of the final writes: they finish, then the exit code says a signal came (130 for SIGINT,
143 for SIGTERM). Further signals are reported once and otherwise ignored, so a second Ctrl-C never
tears a checkpoint or a file in half (SIGKILL still stops the process at once).
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stop:
    """Set by the first SIGINT or SIGTERM; `code` is the exit code it asks for."""

    def __init__(self):
        self._event = threading.Event()
        self.signum: int | None = None
        self.repeated = False

    def is_set(self) -> bool:
        return self._event.is_set()

    def set(self, signum: int) -> None:
        self.signum = signum
        self._event.set()

    @property
    def code(self) -> int:
        return 128 + (self.signum or signal.SIGINT)

    @property
    def name(self) -> str:
        return signal.Signals(self.signum or signal.SIGINT).name


@contextmanager
def stop_on_signals(message: str = "stopping after this chunk, then saving a checkpoint") -> Iterator[Stop]:
    """A Stop the first SIGINT/SIGTERM sets (printing `message`); later ones are noted once and ignored."""
    stop = Stop()
    if threading.current_thread() is not threading.main_thread():  # signal handlers belong to the main thread
        yield stop
        return

    def handler(signum, frame):
        if not stop.is_set():
            stop.set(signum)
            print(f"\ncartpole-jax: {stop.name}: {message}", file=sys.stderr)
        elif not stop.repeated:
            stop.repeated = True
            print("cartpole-jax: already stopping; files are being written (SIGKILL aborts at once)", file=sys.stderr)

    previous = {s: signal.signal(s, handler) for s in SIGNALS}
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
