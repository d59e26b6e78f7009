"""SIGTERM/SIGINT -> the stop event, set from a thread of its own and never from inside a signal handler.

Python runs a signal handler in the main thread, between two bytecodes of whatever that thread was
doing. The file source paces audio with ``stop.wait()`` in the main thread, and ``Event.wait`` holds the
event's (non-reentrant) lock for a few bytecodes around the actual sleep: a SIGTERM landing there ran
``stop.set()``, which waits for that same lock, held by the very thread it interrupted, forever. Measured
on a bare ``while not ev.is_set(): ev.wait(0)`` loop: 2 hangs in 40 SIGTERMs. In the daemon the window is
narrower (most of ``wait`` is spent in the lock-free sleep), which is why it showed only under load, as
"SIGTERM: stopping" and then nothing. Logging from a handler has a cousin of the problem: a write to
stderr re-entered from a handler raises instead of logging.

So the Python handler does nothing at all; the interpreter's C-level handler also writes the signal's
number to a wakeup pipe (``signal.set_wakeup_fd``), and a watcher thread blocked on that pipe logs, arms
the stuck-stop timer and sets the event, in ordinary thread context where taking locks is safe.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType

log = logging.getLogger("genre-daemon")
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _noted(signum: int, frame: FrameType | None) -> None:
    """The Python-level handler: a handler must exist (else SIGTERM kills), but the pipe carries the news."""


def stop_on_signals(stop: threading.Event, on_first: Callable[[], None]) -> threading.Thread:
    """Set ``stop`` on SIGTERM/SIGINT (logging ``SIGTERM: stopping``); ``on_first()`` runs once, before it.

    Call from the main thread (``set_wakeup_fd`` and ``signal.signal`` require it). Returns the watcher.
    """
    read_fd, write_fd = os.pipe()  # non-inheritable: a child never holds our wakeup pipe
    os.set_blocking(write_fd, False)  # the C handler must never block; a full pipe only drops duplicates
    signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    for sig in STOP_SIGNALS:
        signal.signal(sig, _noted)
    watcher = threading.Thread(target=_watch, args=(read_fd, stop, on_first), name="signals", daemon=True)
    watcher.start()
    return watcher


def _watch(read_fd: int, stop: threading.Event, on_first: Callable[[], None]) -> None:
    wanted = {int(s) for s in STOP_SIGNALS}
    while True:
        try:
            data = os.read(read_fd, 64)
        except OSError:
            return
        if not data:
            return
        for signum in data:
            if signum not in wanted:
                continue  # another signal with a Python handler (none today) is not a stop
            log.info("%s: stopping", signal.Signals(signum).name)
            if stop.is_set():
                continue
            try:
                on_first()
            finally:  # the stop itself must happen whatever the hook did
                stop.set()
