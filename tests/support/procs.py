"""Make sure service processes started by the fixtures never outlive the test run.

Example::

    proc = subprocess.Popen(cmd, preexec_fn=die_with_parent(), start_new_session=True)
    register_cleanup(lambda: proc.kill())
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import signal
import threading
from collections.abc import Callable

__all__ = ["die_with_parent", "register_cleanup"]

_PR_SET_PDEATHSIG = 1
_cleanups: list[Callable[[], None]] = []
_lock = threading.Lock()


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A ``preexec_fn`` asking Linux to send ``sig`` to the child when the test process dies.

    Covers the case no teardown can: pytest itself SIGKILLed (CI timeout,
    OOM). Returns ``None`` off the main thread because PDEATHSIG fires when the
    *forking thread* exits, which would kill a broker started from a
    short-lived helper thread.
    """
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)

    return preexec


def register_cleanup(fn: Callable[[], None]) -> None:
    """Run ``fn`` at interpreter exit (after fixture teardown was skipped, e.g. by an internal error)."""
    with _lock:
        _cleanups.append(fn)


@atexit.register
def _run_cleanups() -> None:
    with _lock:
        fns = list(reversed(_cleanups))
        _cleanups.clear()
    for fn in fns:
        with contextlib.suppress(Exception):
            fn()
