"""sd_notify over a real unix datagram socket bound by the test (filesystem and abstract)."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.systemd import SEND_TIMEOUT_S, Notifier, watchdog_interval_s
from tests.support.notify import NotifySocket


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    with NotifySocket(tmp_path / "notify.sock") as sock:
        yield sock


def recv(sock: NotifySocket) -> list[str]:
    return sock.recv()


def test_ready_status_watchdog_stopping(notify_socket: NotifySocket) -> None:
    sock = notify_socket
    n = Notifier(sock.env)
    assert n.enabled
    assert n.ready("listening")
    assert recv(sock) == ["READY=1", f"MAINPID={os.getpid()}", "STATUS=listening"]
    assert n.status("jazz (80%) | windows 3")
    assert recv(sock) == ["STATUS=jazz (80%) | windows 3"]
    assert not n.status("jazz (80%) | windows 3"), "an unchanged status must not be resent"
    assert n.watchdog()
    assert recv(sock) == ["WATCHDOG=1"]
    assert n.stopping("stopping")
    assert recv(sock) == ["STOPPING=1", "STATUS=stopping"]
    n.close()


def test_abstract_socket() -> None:
    with NotifySocket(abstract=f"genre-test-{uuid.uuid4().hex}") as sock:
        assert sock.env["NOTIFY_SOCKET"].startswith("@")
        n = Notifier(sock.env)
        assert n.ready()
        assert recv(sock)[0] == "READY=1"


def test_noop_outside_systemd() -> None:
    n = Notifier({})
    assert not n.enabled
    assert not n.ready() and not n.watchdog() and not n.stopping() and not n.status("x")


def test_vanished_socket_is_not_fatal(tmp_path: Path) -> None:
    n = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    assert n.notify("WATCHDOG=1") is False


def test_watchdog_pings_rate_limited_to_half_the_interval(notify_socket: NotifySocket) -> None:
    sock = notify_socket
    env = {**sock.env, "WATCHDOG_USEC": "10000000", "WATCHDOG_PID": str(os.getpid())}
    n = Notifier(env)
    assert n.watchdog_s == 10.0
    assert n.watchdog(now=100.0)
    assert not n.watchdog(now=104.9)
    assert n.watchdog(now=105.0)
    assert recv(sock) == ["WATCHDOG=1"] and recv(sock) == ["WATCHDOG=1"]


def test_watchdog_interval_only_for_this_pid() -> None:
    assert watchdog_interval_s({"WATCHDOG_USEC": "2000000"}) == 2.0
    assert watchdog_interval_s({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval_s({"WATCHDOG_USEC": "zero"}) is None
    assert watchdog_interval_s({}) is None


def test_a_receiver_that_stops_reading_costs_a_bounded_wait_not_a_hang(notify_socket: NotifySocket) -> None:
    # A unix datagram send blocks once the receiver's queue is full (net.unix.max_dgram_qlen, 10 by default
    # outside systemd): the daemon's loop, and the STOPPING=1 of a stop, sat in sendto until someone read.
    n = Notifier(notify_socket.env)
    outcomes: list[tuple[bool, float]] = []

    def flood() -> None:
        for i in range(5000):
            t0 = time.monotonic()
            sent = n.status(f"hop {i}")
            outcomes.append((sent, time.monotonic() - t0))
            if not sent:
                return

    sender = threading.Thread(target=flood, daemon=True)
    sender.start()
    sender.join(timeout=30)  # generous for a loaded machine; a blocking send never returns at all
    assert not sender.is_alive(), f"sd_notify blocked on a full socket after {len(outcomes)} datagrams"
    assert outcomes[-1][0] is False, "the queue never filled: this test proves nothing"
    # The dropped line waited for the timeout (it was a wait, not an instant refusal), the others did not.
    assert outcomes[-1][1] >= SEND_TIMEOUT_S * 0.9, outcomes[-1]
    assert notify_socket.recv(timeout=1) == ["STATUS=hop 0"]  # what did fit is intact, in order
    n.close()
