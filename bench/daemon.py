"""Section 3: the real ``genre-daemon`` (its CLI, in its own process) publishing to a real local mosquitto.

* Throughput: a looping WAV at ``--speed 0``; real-time factor = daemon CPU seconds / audio seconds, from
  psutil CPU times and the ``stream_s`` of the states a subscriber receives, per 1 s interval after warm-up.
* Real-time pace: ``--speed 1`` on a WAV; the file source releases 0.1 s chunks into the ring buffer at
  t0 + k x 0.1 s, t0 being when it opened the file, which the bench sees through inotify. Latency = arrival
  of the state whose ``stream_s`` ends with chunk k minus that release time; CPU % = CPU s / wall s.
  (A FIFO fed by the bench would time ring entry directly, but the daemon accepts only regular files.)
* READY: time from spawning the process to READY=1 on a NOTIFY_SOCKET the bench binds.
* RSS: psutil every 0.25 s (steady = median of the second half) and ru_maxrss at exit (peak).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import psutil
import soundfile as sf

from bench.common import Row, SectionResult, Table, Target, gtzan_clips, music_like, section_main
from bench.model import model_from_dir

SR = 22050
FloatArray = npt.NDArray[np.float32]
CHUNK = 2205  # the daemon's default source.chunk_s (0.1 s) at 22050 Hz
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


def wait_ready(run: DaemonRun, timeout: float = 30) -> float:
    if not run.notify.ready.wait(timeout) or run.notify.ready_at is None:
        raise RuntimeError(f"daemon sent no READY=1 within {timeout:.0f} s")
    return run.notify.ready_at - run.spawned


def music(seconds: float) -> FloatArray:
    clips = gtzan_clips(limit=int(seconds // 30) + 1)
    if not clips:
        return music_like(seconds, SR)
    from edge.audio import load_audio

    audio = np.concatenate([load_audio(p, SR) for p in clips])
    return audio[: int(seconds * SR)]


def throughput(work: Path, port: int, model: Path, audio: FloatArray, rate: int, seconds: float) -> dict[str, Any]:
    """Real-time factor at --speed 0 on a looping WAV at ``rate`` Hz (22050 = no resampling)."""
    import soxr

    path = work / f"music-{rate}.wav"
    data = audio if rate == SR else soxr.resample(audio, SR, rate)
    sf.write(path, data, rate, subtype="PCM_16")
    name = f"rtf{rate}"
    sub = Subscriber(port, f"bench/{name}/#")
    run = spawn(work, port, model, f"file:{path}", name, ["--speed", "0", "--loop"])
    try:
        ready = wait_ready(run)
        time.sleep(1.0)  # first windows, JIT-less warm-up of the interpreter and MQTT connection
        ratios, speeds = [], []
        prev = (time.monotonic(), run.cpu_s(), sub.latest_stream_s())
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            time.sleep(1.0)
            now = (time.monotonic(), run.cpu_s(), sub.latest_stream_s())
            if prev[2] is not None and now[2] is not None and now[2] > prev[2]:
                ratios.append((now[1] - prev[1]) / (now[2] - prev[2]))
                speeds.append((now[2] - prev[2]) / (now[0] - prev[0]))
            prev = now
    finally:
        run.stop(work / f"daemon-{name}.log")
        sub.close()
    if not ratios:
        raise RuntimeError(f"no states with stream_s received; daemon log: {run.stderr}")
    return {
        "rtf": ratios,
        "speed": speeds,
        "ready_s": ready,
        "peak_rss_mb": run.peak_rss_mb,
        "steady_rss_mb": run.steady_rss_mb(),
        "exit": run.exit_code,
    }


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
        import select

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


def paced(work: Path, port: int, model: Path, audio: FloatArray, seconds: float) -> dict[str, Any]:
    """``--speed 1`` on a regular WAV: latency, CPU % and RSS at real-time pace.

    The file source releases chunk k (0.1 s) into the ring at t0 + k x 0.1 s, t0 being when it opened the
    file; the bench sees that open through inotify, so a window ending at ``stream_s`` entered the ring at
    t0 + stream_s - 0.1 s. The inotify wake-up can only come late, which shortens the measured latency by
    that much (sub-millisecond on an idle core).
    """
    warm = 5.0
    path = work / "paced.wav"
    n = int((seconds + warm + 3) * SR)
    sf.write(path, np.resize(audio, n), SR, subtype="PCM_16")
    name = "paced"
    sub = Subscriber(port, f"bench/{name}/#")
    watch = OpenWatch(path)
    run = spawn(work, port, model, f"file:{path}", name, ["--speed", "1"])
    try:
        ready = wait_ready(run)
        time.sleep(warm)  # the first window needs 3 s of audio; measure CPU from steady state on
        cpu0, t0 = run.cpu_s(), time.monotonic()
        time.sleep(seconds)
        cpu1, t1 = run.cpu_s(), time.monotonic()
        time.sleep(0.3)  # the last state in flight
    finally:
        run.stop(work / f"daemon-{name}.log")
        sub.close()
        watch.close()
    if watch.opened is None:
        raise RuntimeError(f"the daemon never opened {path}; log: {run.stderr}")
    open_mono, open_wall = watch.opened
    chunk_s = CHUNK / SR
    latency, processing, transport = [], [], []
    for t_mono, t_wall, doc in sub.states:
        s = doc.get("stream_s")
        if s is None:
            continue
        entered = float(s) - chunk_s  # the chunk holding the window's last sample was released at its start
        latency.append((t_mono - open_mono - entered) * 1e3)
        with contextlib.suppress(KeyError, ValueError):
            from datetime import datetime

            stamped = datetime.fromisoformat(doc["time"].replace("Z", "+00:00")).timestamp()
            processing.append((stamped - open_wall - entered) * 1e3)
            transport.append((t_wall - stamped) * 1e3)
    if not latency:
        raise RuntimeError(f"no states received; daemon log: {run.stderr}")
    return {
        "latency_ms": latency,
        "processing_ms": processing,
        "transport_ms": transport,
        "cpu_pct": 100 * (cpu1 - cpu0) / (t1 - t0),
        "cpu_window_s": t1 - t0,
        "ready_s": ready,
        "peak_rss_mb": run.peak_rss_mb,
        "steady_rss_mb": run.steady_rss_mb(),
        "exit": run.exit_code,
        "windows": len(latency),
    }


def run(args: argparse.Namespace) -> SectionResult:
    choice = model_from_dir(args.model_dir)
    res = SectionResult("daemon", "3. Whole daemon")
    res.notes.append(f"model: {choice.describe()}; command: {' '.join(daemon_command())} --source file:... --speed 0")
    rtf_s, paced_s = (4.0, 15.0) if args.quick else (10.0, 60.0)
    audio = music(60.0)
    res.notes.append(f"audio: {'GTZAN clips' if gtzan_clips(1) else 'synthetic music-like signal'}, 60 s, looped")
    with tempfile.TemporaryDirectory(prefix="bench-daemon-") as tmp:
        work = Path(tmp)
        with mosquitto(work) as port:
            fast = throughput(work, port, choice.bundle, audio, SR, rtf_s)
            fast44 = throughput(work, port, choice.bundle, audio, 44100, rtf_s)
            rt = paced(work, port, choice.bundle, audio, paced_s)
    rtf = Row(
        "CPU s per audio s, --speed 0, 22.05 kHz WAV",
        "CPU s/audio s",
        fast["rtf"],
        note=f"{np.median(fast['speed']):.0f}x faster than real time (wall)",
    )
    rtf44 = Row(
        "CPU s per audio s, --speed 0, 44.1 kHz WAV (+ soxr resampling)",
        "CPU s/audio s",
        fast44["rtf"],
        note=f"{np.median(fast44['speed']):.0f}x faster than real time (wall)",
    )
    res.tables.append(Table("Real-time factor (lower is better)", [rtf, rtf44], note="1 s intervals after warm-up"))
    res.tables.append(
        Table(
            "Latency at real-time pace (--speed 1): window's last sample enters the ring -> state at subscriber",
            [
                Row(
                    "total",
                    "ms",
                    rt["latency_ms"],
                    note=f"{rt['windows']} windows; p99 {np.percentile(rt['latency_ms'], 99):.1f} ms",
                ),
                Row(
                    "  of which: ring -> state JSON stamped (MFCC, inference, smoothing)",
                    "ms",
                    rt["processing_ms"],
                    note="from the state's 'time' field (ms resolution, wall clock)",
                ),
                Row("  of which: stamped -> subscriber (outbox, broker)", "ms", rt["transport_ms"]),
            ],
            note="ms; ratio to total",
        )
    )
    readies = [fast["ready_s"], fast44["ready_s"], rt["ready_s"]]
    res.tables.append(
        Table(
            "Process: start-up and memory",
            [
                Row("spawn -> READY=1 on NOTIFY_SOCKET", "s", readies, note="3 starts"),
                Row("CPU at real-time pace", "% of one core", [rt["cpu_pct"]], note=f"over {rt['cpu_window_s']:.0f} s"),
                Row("steady RSS (paced run, 2nd half median)", "MB", [rt["steady_rss_mb"]]),
                Row(
                    "peak RSS (ru_maxrss, max of the 3 runs)",
                    "MB",
                    [max(fast["peak_rss_mb"], fast44["peak_rss_mb"], rt["peak_rss_mb"])],
                ),
            ],
            note="one row per quantity; ratios are not meaningful here",
        )
    )
    peak = max(fast["peak_rss_mb"], fast44["peak_rss_mb"], rt["peak_rss_mb"])
    p50 = float(np.median(rt["latency_ms"]))
    p99 = float(np.percentile(rt["latency_ms"], 99))
    res.targets = [
        Target("whole-daemon real-time factor (22.05 kHz)", float(np.median(fast["rtf"])), "<=", 0.01, "CPU s/audio s"),
        Target("daemon CPU at real-time pace", rt["cpu_pct"], "<=", 2.0, "% of a core"),
        Target("daemon peak RSS", peak, "<=", 80.0, "MB"),
        Target("daemon spawn -> READY", float(np.median(readies)), "<=", 2.0, "s"),
    ]
    res.facts = {
        "rtf": float(np.median(fast["rtf"])),
        "rtf44": float(np.median(fast44["rtf"])),
        "speed": float(np.median(fast["speed"])),
        "cpu_pct": rt["cpu_pct"],
        "latency_p50_ms": p50,
        "latency_p99_ms": p99,
        "ready_s": float(np.median(readies)),
        "peak_rss_mb": peak,
        "steady_rss_mb": rt["steady_rss_mb"],
        "exit_codes": [fast["exit"], fast44["exit"], rt["exit"]],
    }
    f = res.facts
    res.headline.append(
        f"Whole daemon: {f['rtf']:.4f} CPU s per audio s at --speed 0 ({f['speed']:.0f}x real time on the wall clock; "
        f"{f['rtf44'] / f['rtf']:.2f}x that with 44.1 kHz input and resampling); {f['cpu_pct']:.1f}% of one core at "
        f"real-time pace; latency ring -> subscriber p50 {p50:.1f} ms, p99 {p99:.1f} ms; READY after "
        f"{f['ready_s']:.2f} s; peak RSS {peak:.0f} MB."
    )
    return res


if __name__ == "__main__":
    section_main("daemon", run)
