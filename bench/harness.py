"""Process plumbing for the whole-daemon section: a private mosquitto, a subscriber, a NOTIFY_SOCKET, the
daemon process itself (CPU, RSS, rusage at exit) and an inotify watch on its input file.

The broker, the notify socket, the daemon command and PR_SET_PDEATHSIG (an interrupted bench leaves no
broker or daemon behind) are the tests' own, from ``tests/support``.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import select
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from tests.support.daemon_proc import daemon_command
from tests.support.mosquitto import MosquittoBroker
from tests.support.notify import ReadyRecorder
from tests.support.procs import die_with_parent

__all__ = ["DaemonRun", "OpenWatch", "Subscriber", "daemon_command", "mosquitto", "spawn", "wait_ready"]


@contextlib.contextmanager
def mosquitto(work: Path) -> Iterator[int]:
    """A private broker on a free loopback port (the tests' MosquittoBroker); yields the port."""
    with MosquittoBroker(work / "mosquitto") as broker:
        yield broker.port


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


@dataclass
class DaemonRun:
    """One daemon process: spawn time, READY, CPU/RSS samples, exit status and peak RSS."""

    proc: subprocess.Popen[bytes]
    spawned: float
    notify: ReadyRecorder
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
            self.read_peak()

    def read_peak(self) -> None:
        """The daemon's own high-water mark (VmHWM, kept by the kernel since its exec). Not wait4's ru_maxrss:
        the child is forked from this process (``preexec_fn``), and Linux carries the forked copy's RSS, this
        whole bench process, into ru_maxrss across the exec (a lite daemon of 62 MB read as 81 MB)."""
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    self.peak_rss_mb = max(self.peak_rss_mb, int(line.split()[1]) / 1024)  # kB

    def reap(self) -> bool:
        """wait4 instead of Popen.wait/poll, so the exit status is read exactly once."""
        if self.exit_code is not None:
            return True
        pid, status, _ = os.wait4(self.proc.pid, os.WNOHANG)
        if not pid:
            return False
        self.exit_code = os.waitstatus_to_exitcode(status)
        self.proc.returncode = self.exit_code
        return True

    def stop(self, stderr_path: Path) -> None:
        self._stop.set()
        self.read_peak()  # the last look before the daemon exits (a run that ended by itself: its last sample)
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


def spawn(work: Path, port: int, model: Path, source: str, name: str, extra: list[str]) -> DaemonRun:
    sock_path = work / f"notify-{name}.sock"
    notify = ReadyRecorder(sock_path)
    env = dict(os.environ, **notify.env, TF_CPP_MIN_LOG_LEVEL="3")
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
        cmd, stdout=subprocess.DEVNULL, stderr=stderr, env=env, cwd=work, preexec_fn=die_with_parent()
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
