"""A private PulseAudio server with a virtual sink, so capture code runs without sound hardware.

``module-null-sink`` named ``vsink`` (44100 Hz, stereo) is the default sink,
and its monitor ``vsink.monitor`` the default source. Whatever is played into
``vsink`` (``paplay --device=vsink``) comes out, in real time, of every
capture stream: PyAudio's ``pulse`` and ``default`` devices (ALSA -> pulse via
libasound2-plugins), ``parec``, and the daemon under test.

Example::

    server = PulseServer(tmp_path / "pulse").start()
    server.apply_env()                      # this process: PyAudio must be created *after* this
    proc = server.play(wav_path)            # background paplay into vsink
    subprocess.run(["genre-daemon", ...], env={**os.environ, **server.env})
    server.kill(); ...; server.start()      # device vanishes and returns (same socket path)
    server.stop()

Start-up takes ~0.2 s, and a new capture stream gets its first samples in ~30 ms
(see ``_start_keeper`` for why that needs help).
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.support.procs import ServiceProcess, die_with_parent

__all__ = ["PulseServer", "pulse_available", "record_pyaudio"]

DEFAULT_START_TIMEOUT_S = 10.0
DEFAULT_STOP_TIMEOUT_S = 5.0


def pulse_available() -> str | None:
    """``None`` if everything needed is installed, else a skip reason naming what is missing."""
    missing = [b for b in ("pulseaudio", "pactl", "paplay") if shutil.which(b) is None]
    if missing:
        return f"PulseAudio tools not installed ({', '.join(missing)}): apt-get install pulseaudio pulseaudio-utils"
    if not any(Path(p).exists() for p in ("/etc/alsa/conf.d/99-pulse.conf", "/usr/share/alsa/alsa.conf.d/pulse.conf")):
        return "ALSA pulse plugin config missing: apt-get install libasound2-plugins"
    return None


class PulseServer(ServiceProcess):
    """One ``pulseaudio`` daemon with its own ``XDG_RUNTIME_DIR`` and ``HOME`` under ``workdir``.

    Args:
        workdir: created; holds ``runtime/`` (socket), ``home/``,
            ``pa.pa`` and ``pulseaudio.log``.
        sink_name: name of the null sink; its monitor source is ``<sink_name>.monitor``.
        rate: sink sample rate in Hz.
        channels: sink channel count.

    ``env`` holds XDG_RUNTIME_DIR, HOME and PULSE_SERVER for subprocesses; it
    stays valid across :meth:`kill`/:meth:`start` (same socket path).
    """

    def __init__(self, workdir: Path, *, sink_name: str = "vsink", rate: int = 44100, channels: int = 2) -> None:
        super().__init__(workdir / "pulseaudio.log")
        self.stop_timeout_s = DEFAULT_STOP_TIMEOUT_S
        self.workdir = workdir
        self.sink_name = sink_name
        self.source_name = f"{sink_name}.monitor"
        self.rate = rate
        self.channels = channels
        self.runtime_dir = workdir / "runtime"
        self.home_dir = workdir / "home"
        self.script_path = workdir / "pa.pa"
        self.socket_path = self.runtime_dir / "pulse" / "native"
        self.start_seconds: float | None = None  # wall time of the last start(), for reports
        self._keeper: subprocess.Popen[bytes] | None = None
        self._players: list[subprocess.Popen[bytes]] = []

    @property
    def env(self) -> dict[str, str]:
        """Variables a client process needs: ``subprocess.run(cmd, env={**os.environ, **server.env})``."""
        return {
            "XDG_RUNTIME_DIR": str(self.runtime_dir),
            "HOME": str(self.home_dir),
            "PULSE_SERVER": f"unix:{self.socket_path}",
        }

    def apply_env(self, *, include_home: bool = False) -> dict[str, str | None]:
        """Point this process's pulse clients (PyAudio/ALSA) at the server; returns the old values.

        HOME is left alone by default: changing it mid-session would move
        ``~/.cache`` and other per-user paths for unrelated code, and clients
        only need PULSE_SERVER/XDG_RUNTIME_DIR. Create ``pyaudio.PyAudio()``
        after this call: PortAudio enumerates devices at init.
        Undo with :meth:`restore_env`.
        """
        keys = [k for k in self.env if include_home or k != "HOME"]
        old = {k: os.environ.get(k) for k in keys}
        for k in keys:
            os.environ[k] = self.env[k]
        return old

    @staticmethod
    def restore_env(old: dict[str, str | None]) -> None:
        """Undo :meth:`apply_env`."""
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

    @contextlib.contextmanager
    def env_applied(self) -> Iterator[PulseServer]:
        """``with server.env_applied(): p = pyaudio.PyAudio() ...``"""
        old = self.apply_env()
        try:
            yield self
        finally:
            self.restore_env(old)

    def _full_env(self) -> dict[str, str]:
        return {**os.environ, **self.env}

    # -- lifecycle ---------------------------------------------------------

    def start(self, timeout: float = DEFAULT_START_TIMEOUT_S) -> PulseServer:
        """Start the daemon (no-op if running) and wait until ``pactl info`` answers.

        Raises ``RuntimeError`` with the daemon log if it does not come up
        within ``timeout`` seconds. Returns ``self``.
        """
        if self.running:
            return self
        for d in (self.runtime_dir, self.home_dir):
            d.mkdir(parents=True, exist_ok=True)
            d.chmod(0o700)  # pulse refuses runtime dirs that others can write
        self.script_path.write_text(
            "load-module module-native-protocol-unix auth-anonymous=1\n"
            f"load-module module-null-sink sink_name={self.sink_name} rate={self.rate} channels={self.channels}\n"
            f"set-default-sink {self.sink_name}\n"
            f"set-default-source {self.source_name}\n"
        )
        t0 = time.monotonic()
        # Run as our own child (--daemonize=no) instead of the usual
        # --daemonize=yes: a daemonized pulse is re-parented to PID 1, which in
        # this container reaps lazily, so a killed daemon lingers as a zombie whose
        # PID still "exists" and the next start fails with "Daemon already running".
        # As a child we stop it by PID and reap it ourselves. As root pulse logs
        # "not intended to be run as root" and carries on.
        self._launch(
            [
                "pulseaudio",
                "--daemonize=no",
                "-n",
                "-F",
                str(self.script_path),
                "--exit-idle-time=-1",
                "--system=false",
                "--disallow-exit",
                "--use-pid-file=no",
                "--log-target=stderr",
                "--log-level=info",
                "--log-time=yes",
            ],
            at_exit=self.stop,
            env=self._full_env(),
        )
        assert self._proc is not None
        deadline = t0 + timeout
        while True:
            if self._proc.poll() is not None:
                rc = self._proc.returncode
                self._reap()
                raise RuntimeError(f"pulseaudio exited with {rc} during start:\n{self.log_text()}")
            probe = subprocess.run(
                ["pactl", "info"],
                env=self._full_env(),
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
            if probe.returncode == 0 and self.source_name in probe.stdout:
                break
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"pulseaudio not answering after {timeout}s: {probe.stderr}\n{self.log_text()}")
            time.sleep(0.02)
        self._start_keeper(deadline)
        self.start_seconds = time.monotonic() - t0
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop players, then the daemon (SIGTERM, SIGKILL after ``timeout`` s); idempotent."""
        for p in self._players:
            _stop_popen(p)
        self._players.clear()
        self._signal_and_wait(signal.SIGTERM, timeout)

    def _start_keeper(self, deadline: float) -> None:
        # An idle null sink renders in ~2 s blocks (nobody asked for lower
        # latency), so a new capture stream, PyAudio's included, got its first
        # samples only after up to 2 s. A permanent 10 ms-latency monitor reader
        # keeps the sink waking every few ms; then first samples arrive in ~30 ms.
        # We wait until a probe stream sees that, so the first test is not slow.
        self._keeper = subprocess.Popen(
            ["parec", f"--device={self.source_name}", "--latency-msec=10", "--raw"],
            env=self._full_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._log_handle,
            preexec_fn=die_with_parent(),
        )
        # Suspending and resuming the sink restarts its timer, so it re-plans for
        # the keeper's latency now instead of after the current 2 s block.
        for flag in ("1", "0"):
            subprocess.run(
                ["pactl", "suspend-sink", self.sink_name, flag],
                env=self._full_env(),
                capture_output=True,
                timeout=max(0.1, deadline - time.monotonic()),
                check=False,
            )
        while True:
            first_byte_s = self._first_byte_seconds(max(0.1, deadline - time.monotonic()))
            if first_byte_s is not None and first_byte_s < 0.25:
                return
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"pulse capture never got fast (last first-byte {first_byte_s}s)\n{self.log_text()}")

    def _first_byte_seconds(self, timeout: float) -> float | None:
        """Seconds until a fresh ``parec`` stream yields data, ``None`` if not within ``timeout``."""
        t0 = time.monotonic()
        probe = subprocess.Popen(
            ["parec", f"--device={self.source_name}", "--latency-msec=10", "--raw"],
            env=self._full_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        try:
            assert probe.stdout is not None
            ready, _, _ = select.select([probe.stdout], [], [], timeout)
            return time.monotonic() - t0 if ready and os.read(probe.stdout.fileno(), 64) else None
        finally:
            _stop_popen(probe)

    def _reap(self) -> None:
        if self._keeper is not None:
            _stop_popen(self._keeper)
            self._keeper = None
        super()._reap()

    # -- audio -------------------------------------------------------------

    def play(self, path: Path, *, device: str | None = None, volume: int | None = None) -> subprocess.Popen[bytes]:
        """Start ``paplay`` of ``path`` into the sink in the background; returns the Popen.

        Plays in real time (a 3 s file takes ~3 s). ``volume`` is pulse's
        0..65536 scale (65536 = 100 %). Players still running at :meth:`stop`
        are terminated. Wait with ``proc.wait(timeout=...)``.
        """
        args = ["paplay", f"--device={device or self.sink_name}"]
        if volume is not None:
            args.append(f"--volume={volume}")
        args.append(str(path))
        with (self.workdir / "paplay.log").open("ab") as log:
            proc = subprocess.Popen(
                args,
                env=self._full_env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent(),
            )
        self._players = [p for p in self._players if p.poll() is None]
        self._players.append(proc)
        return proc

    def pactl(self, *args: str, timeout: float = 5.0) -> str:
        """Run ``pactl ARGS`` against this server and return stdout (raises on failure)."""
        out = subprocess.run(
            ["pactl", *args], env=self._full_env(), capture_output=True, text=True, timeout=timeout, check=True
        )
        return out.stdout

    def __repr__(self) -> str:
        return f"PulseServer(socket={self.socket_path}, pid={self.pid})"


def _stop_popen(proc: subprocess.Popen[Any], timeout: float = DEFAULT_STOP_TIMEOUT_S) -> None:
    if proc.stdout is not None:
        proc.stdout.close()
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)


def record_pyaudio(
    seconds: float,
    *,
    rate: int = 44100,
    channels: int = 2,
    device_name: str = "pulse",
    frames_per_buffer: int = 1024,
) -> Any:
    """Record ``seconds`` of int16 audio with PyAudio; returns a ``(frames, channels)`` int16 array.

    ``device_name`` picks the first input device whose name equals it
    (``"pulse"`` or ``"default"``). The caller must have applied the server env
    first (:meth:`PulseServer.apply_env`). Blocking reads are bounded because
    a pulse stream delivers in real time; if the server dies the read raises.

    Example::

        with pulse.env_applied():
            audio = record_pyaudio(1.0)          # shape (44100, 2)
    """
    import numpy as np
    import pyaudio

    pa = pyaudio.PyAudio()
    try:
        index = None
        names = []
        for i in range(pa.get_device_count()):
            info = pa.get_device_info_by_index(i)
            names.append(f"{info['name']} (in={info['maxInputChannels']})")
            if info["name"] == device_name and int(info["maxInputChannels"]) > 0:
                index = i
                break
        if index is None:
            raise AssertionError(f"no PyAudio input device named {device_name!r}; have: {names}")
        stream = pa.open(
            format=pyaudio.paInt16,
            channels=channels,
            rate=rate,
            input=True,
            input_device_index=index,
            frames_per_buffer=frames_per_buffer,
        )
        try:
            total = round(seconds * rate)
            chunks = []
            got = 0
            while got < total:
                n = min(frames_per_buffer, total - got)
                chunks.append(stream.read(n, exception_on_overflow=False))
                got += n
        finally:
            stream.stop_stream()
            stream.close()
    finally:
        pa.terminate()
    return np.frombuffer(b"".join(chunks), dtype=np.int16).reshape(-1, channels)
