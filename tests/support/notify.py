"""A unix datagram socket standing in for systemd's ``NOTIFY_SOCKET`` (sd_notify's receiving end).

Example::

    with NotifySocket(tmp_path / "notify.sock") as notify:
        d = daemon(music, env={**notify.env, "WATCHDOG_USEC": "1000000"})
        lines = notify.recv(timeout=10)          # one datagram: ["READY=1", "MAINPID=...", ...]
        seen = notify.collect(3.0)               # every line that arrives in 3 s

``ReadyRecorder`` records in a thread when ``READY=1`` arrives (the bench times start-up with it).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = ["NotifySocket", "ReadyRecorder"]


class NotifySocket:
    """Bound at a filesystem ``path``, or in the abstract namespace as ``@abstract``."""

    def __init__(self, path: Path | None = None, *, abstract: str | None = None, timeout: float = 2.0) -> None:
        if (path is None) == (abstract is None):
            raise ValueError("give a path or an abstract name")
        self.path = path
        self.address = str(path) if path is not None else "@" + str(abstract)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path) if path is not None else b"\0" + str(abstract).encode())
        self.sock.settimeout(timeout)

    @property
    def env(self) -> dict[str, str]:
        """The environment a notifying process needs to find this socket."""
        return {"NOTIFY_SOCKET": self.address}

    def recv(self, timeout: float | None = None) -> list[str]:
        """The lines of the next datagram; TimeoutError when none comes within ``timeout`` (default: the socket's)."""
        if timeout is not None:
            self.sock.settimeout(timeout)
        return self.sock.recv(4096).decode().split("\n")

    def collect(self, seconds: float, until: str | None = None) -> list[str]:
        """Every line that arrives within ``seconds`` (stopping early once ``until`` is among them)."""
        seen: list[str] = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0 and (until is None or until not in seen):
            with contextlib.suppress(TimeoutError):
                seen += self.recv(timeout=min(left, 0.2))
        return seen

    def close(self) -> None:
        self.sock.close()
        if self.path is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class ReadyRecorder(NotifySocket):
    """Reads in a thread; ``ready_at`` is ``time.monotonic()`` when the first ``READY=1`` arrived."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, timeout=0.2)
        self.ready_at: float | None = None
        self.ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                lines = self.recv()
            except TimeoutError:
                continue
            except OSError:
                return
            if "READY=1" in lines and self.ready_at is None:
                self.ready_at = time.monotonic()
                self.ready.set()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(1)
        super().close()
