"""Process plumbing for the whole-daemon section: a private mosquitto, a subscriber, a NOTIFY_SOCKET, the
daemon process itself (CPU, RSS, rusage at exit) and an inotify watch on its input file.

Every process started here gets PR_SET_PDEATHSIG, so an interrupted bench leaves no broker or daemon behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Children get SIGTERM if the bench dies, so no daemon or broker outlives an interrupted run."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def mosquitto(work: Path) -> Iterator[int]:
    port = free_port()
    conf = work / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest none\n")
    proc = subprocess.Popen(
        ["mosquitto", "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=_die_with_parent,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mosquitto did not start on port {port}")
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Subscriber:
    """Records every state message with its arrival time (monotonic and wall clock)."""

    def __init__(self, port: int, topic: str) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.states: list[tuple[float, float, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-sub-{os.getpid()}")
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(topic, qos=0)
        self.client.loop_start()
        if not self._subscribed.wait(5):
            raise RuntimeError("subscriber could not subscribe")

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        t_mono, t_wall = time.monotonic(), time.time()
        if not msg.topic.endswith("/state") or msg.retain:
            return
        try:
            doc = json.loads(msg.payload)
        except ValueError:
            return
        with self._lock:
            self.states.append((t_mono, t_wall, doc))

    def latest_stream_s(self) -> float | None:
        with self._lock:
            for _, _, doc in reversed(self.states):
                if doc.get("stream_s") is not None:
                    return float(doc["stream_s"])
        return None

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class NotifySocket:
    """A datagram socket standing in for systemd's: records when READY=1 arrives."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.ready_at: float | None = None
        self.ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            if b"READY=1" in data.split(b"\n") and self.ready_at is None:
                self.ready_at = time.monotonic()
                self.ready.set()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(1)
        self.sock.close()
        with contextlib.suppress(OSError):
            self.path.unlink()


@dataclass
class DaemonRun:
    """One daemon process: spawn time, READY, CPU/RSS samples, exit status and peak RSS."""

    proc: subprocess.Popen[bytes]
    spawned: float
    notify: NotifySocket
    ps: psutil.Process
    rss: list[tuple[float, float]] = field(default_factory=list)
    peak_rss_mb: float = 0.0
    exit_code: int | None = None
    stderr: str = ""
    _stop: threading.Event = field(default_factory=threading.Event)

    def cpu_s(self) -> float:
        t = self.ps.cpu_times()
        return float(t.user + t.system)

    def sample_rss(self) -> None:
        while not self._stop.wait(0.25):
            with contextlib.suppress(psutil.Error):
                self.rss.append((time.monotonic(), self.ps.memory_info().rss / 2**20))

    def reap(self) -> bool:
        """wait4 instead of Popen.wait/poll: only wait4 returns the child's rusage (its peak RSS)."""
        if self.exit_code is not None:
            return True
        pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
        if not pid:
            return False
        self.exit_code = os.waitstatus_to_exitcode(status)
        self.proc.returncode = self.exit_code
        self.peak_rss_mb = usage.ru_maxrss / 1024  # KiB on Linux
        return True

    def stop(self, stderr_path: Path) -> None:
        self._stop.set()
        if not self.reap():
            os.kill(self.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while not self.reap():
            if time.monotonic() > deadline:
                os.kill(self.proc.pid, signal.SIGKILL)
                deadline = time.monotonic() + 10
            time.sleep(0.05)
        self.notify.close()
        self.stderr = stderr_path.read_text(errors="replace")[-2000:] if stderr_path.exists() else ""

    def steady_rss_mb(self) -> float:
        values = [r for _, r in self.rss]
        return float(np.median(values[len(values) // 2 :])) if values else float("nan")


def daemon_command() -> list[str]:
    script = Path(sys.executable).with_name("genre-daemon")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "daemon"]


def spawn(work: Path, port: int, model: Path, source: str, name: str, extra: list[str]) -> DaemonRun:
    sock_path = work / f"notify-{name}.sock"
    notify = NotifySocket(sock_path)
    env = dict(os.environ, NOTIFY_SOCKET=str(sock_path), TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("WATCHDOG_USEC", None)
    cmd = [
        *daemon_command(),
        "--source",
        source,
        "--mqtt-host",
        "127.0.0.1",
        "--mqtt-port",
        str(port),
        "--device-id",
        name,
        "--prefix",
        "bench",
        "--model",
        str(model),
        "--log-level",
        "warning",
        *extra,
    ]
    stderr = (work / f"daemon-{name}.log").open("wb")
    spawned = time.monotonic()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=stderr, env=env, cwd=work, preexec_fn=_die_with_parent
    )
    stderr.close()
    run = DaemonRun(proc, spawned, notify, psutil.Process(proc.pid))
    threading.Thread(target=run.sample_rss, daemon=True).start()
    return run


def wait_ready(run: DaemonRun, log: Path, timeout: float = 30) -> float:
    """Seconds from spawn to READY=1; a daemon that exits or stays silent fails with its log's tail."""
    deadline = time.monotonic() + timeout
    while not run.notify.ready.wait(0.1):
        if run.reap() or time.monotonic() > deadline:
            state = f"exited with {run.exit_code}" if run.exit_code is not None else f"silent for {timeout:.0f} s"
            tail = log.read_text(errors="replace")[-800:] if log.exists() else ""
            raise RuntimeError(f"daemon sent no READY=1 ({state}): {tail}")
    assert run.notify.ready_at is not None
    return run.notify.ready_at - run.spawned


class OpenWatch:
    """inotify IN_OPEN on one file: when the daemon's file source opened it (it starts its pacing clock then)."""

    IN_OPEN = 0x20

    def __init__(self, path: Path) -> None:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        self.fd = int(libc.inotify_init1(os.O_NONBLOCK))
        if self.fd < 0 or libc.inotify_add_watch(self.fd, str(path).encode(), self.IN_OPEN) < 0:
            raise OSError(ctypes.get_errno(), "inotify unavailable")
        self.opened: tuple[float, float] | None = None  # (monotonic, wall)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set() and self.opened is None:
            ready, _, _ = select.select([self.fd], [], [], 0.1)
            if ready:
                self.opened = (time.monotonic(), time.time())
                with contextlib.suppress(OSError):
                    os.read(self.fd, 4096)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(1)
        os.close(self.fd)
