"""Make sure service processes started by the fixtures never outlive the test run.

Example::

    proc = subprocess.Popen(cmd, preexec_fn=die_with_parent(), start_new_session=True)
    register_cleanup(lambda: proc.kill())
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self

__all__ = ["ServiceProcess", "die_with_parent", "register_cleanup"]

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


class ServiceProcess:
    """Lifecycle shared by the service fixtures: one child process logging into ``log_path``.

    Subclasses implement ``start()`` (setting ``_proc`` and ``_log_handle``) and may extend
    ``_reap()`` to stop helpers of their own.
    """

    stop_timeout_s = 5.0

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_handle: Any = None
        self._cleanup_registered = False

    def start(self) -> Self:
        raise NotImplementedError

    def _launch(self, cmd: list[str], at_exit: Callable[[], None], env: dict[str, str] | None = None) -> None:
        """Start ``cmd`` logging into ``log_path``; it dies with the test run even if teardown never runs.

        Own session: a Ctrl-C in the terminal must not kill the service before the test's teardown does.
        ``at_exit`` runs at interpreter exit (registered once per object).
        """
        self._log_handle = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            cmd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log_handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent(),
        )
        if not self._cleanup_registered:
            register_cleanup(at_exit)
            self._cleanup_registered = True

    @property
    def pid(self) -> int | None:
        """PID of the running process, or ``None``."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    @property
    def running(self) -> bool:
        return self.pid is not None

    def stop(self, timeout: float | None = None) -> None:
        """SIGTERM (a clean shutdown), SIGKILL after ``timeout`` s; idempotent."""
        self._signal_and_wait(signal.SIGTERM, timeout)

    def kill(self, timeout: float | None = None) -> None:
        """SIGKILL: the service vanishes without a goodbye (a power cut, an unplugged device)."""
        self._signal_and_wait(signal.SIGKILL, timeout)

    def _signal_and_wait(self, sig: signal.Signals, timeout: float | None) -> None:
        proc = self._proc
        if proc is None:
            return
        wait_s = self.stop_timeout_s if timeout is None else timeout
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                # A paused (SIGSTOPped) process would sit on SIGTERM forever.
                os.kill(proc.pid, signal.SIGCONT)
                os.kill(proc.pid, sig)
            try:
                proc.wait(timeout=wait_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=self.stop_timeout_s)
        self._reap()

    def _reap(self) -> None:
        self._proc = None
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None

    def log_text(self) -> str:
        """The process's log so far (appended across starts), for assertion messages."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
