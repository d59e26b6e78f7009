"""sd_notify over ``$NOTIFY_SOCKET`` in pure Python; a no-op outside systemd.

Supports filesystem and abstract (``@name``) datagram sockets. ``$WATCHDOG_USEC`` (and
``$WATCHDOG_PID``) give the watchdog interval; pings are rate-limited to half of it.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

log = logging.getLogger(__name__)
# A unix datagram send blocks while the receiver's queue is full (systemd busy, or a test's socket nobody
# reads): without a bound the audio loop, and a stop's STOPPING=1, waited for as long as that lasted.
SEND_TIMEOUT_S = 0.2


def _address(raw: str) -> str | bytes | None:
    if raw.startswith("@"):
        # Abstract namespace: a leading NUL byte instead of '@'.
        return b"\0" + raw[1:].encode()
    if raw.startswith("/"):
        return raw
    return None  # vsock and other families are not used on a Pi


def watchdog_interval_s(environ: Mapping[str, str] | None = None) -> float | None:
    """The watchdog period in seconds if systemd enabled it for this process, else None."""
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC")
    pid = env.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 1e6 if value > 0 else None


class Notifier:
    """Sends state lines to systemd; every method is safe to call when not under systemd."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self._addr = _address(env.get("NOTIFY_SOCKET", ""))
        self._sock: socket.socket | None = None
        if self._addr is not None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.settimeout(SEND_TIMEOUT_S)
        interval = watchdog_interval_s(env)
        self.watchdog_s = interval
        self._min_ping_gap = interval / 2 if interval else 0.0
        self._last_ping = -1e18
        self._last_status = ""

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def notify(self, *lines: str) -> bool:
        """Send ``KEY=value`` lines in one datagram; False if not under systemd or sending failed."""
        if self._sock is None or self._addr is None:
            return False
        try:
            self._sock.sendto("\n".join(lines).encode(), self._addr)
            return True
        except OSError as exc:  # TimeoutError too: a line systemd cannot take now is dropped
            # systemd may have gone away (e.g. during shutdown); never fatal for the daemon.
            log.debug("sd_notify failed: %s", exc)
            return False

    def ready(self, status: str = "") -> bool:
        lines = ["READY=1", f"MAINPID={os.getpid()}"]
        if status:
            lines.append(f"STATUS={status}")
            self._last_status = status
        return self.notify(*lines)

    def status(self, text: str) -> bool:
        """``STATUS=`` line; unchanged text is not resent."""
        if text == self._last_status:
            return False
        self._last_status = text
        return self.notify(f"STATUS={text}")

    def watchdog(self, now: float | None = None) -> bool:
        """``WATCHDOG=1``, at most once per half watchdog interval (every call when no interval is set)."""
        t = time.monotonic() if now is None else now
        if t - self._last_ping < self._min_ping_gap:
            return False
        self._last_ping = t
        return self.notify("WATCHDOG=1")

    def stopping(self, status: str = "") -> bool:
        return self.notify("STOPPING=1", *([f"STATUS={status}"] if status else []))

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
