"""Microphone capture with PyAudio: a dedicated thread, a bounded queue, reopen with backoff.

Device and rate choice and the chunk conversion are pure functions, tested on recorded buffers;
the capture thread converts each block to mono float32, resamples it to the model's rate and
queues it, dropping (and counting) the oldest audio if the pipeline falls behind.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from daemon.errors import SourceUnavailable
from daemon.settings import SourceSettings
from daemon.source_base import OK, UNAVAILABLE, FloatArray, SourceStats
from daemon.window_grid import WindowGrid
from edge.audio import StreamResampler, to_mono
from edge.native_stderr import native_stderr_to_debug

log = logging.getLogger(__name__)
PA_INPUT_OVERFLOWED = -9981  # pyaudio.paInputOverflowed, without importing pyaudio at module load
PREFERRED_RATES = (48000, 44100, 32000, 22050, 16000)


def interleaved_to_mono(raw: bytes, sample_format: str, channels: int) -> FloatArray:
    """Interleaved PCM bytes (``int16`` or ``float32``, native endian) -> mono float32 in [-1, 1]."""
    if sample_format == "int16":
        samples = np.frombuffer(raw, dtype=np.int16).astype(np.float32) * np.float32(1.0 / 32768.0)
    elif sample_format == "float32":
        samples = np.frombuffer(raw, dtype=np.float32)
    else:
        raise ValueError(f"unsupported sample format {sample_format!r}")
    usable = samples.size - samples.size % channels  # a torn last frame cannot be mixed
    return to_mono(samples[:usable].reshape(-1, channels))


class LossDetector:
    """Counts audio lost upstream without an overflow flag (PulseAudio's ALSA plugin drops it silently).

    Fed after every read. Only reads that had to wait for fresh audio (we are caught up) are
    compared: there, wall time minus audio time received is constant up to clock drift (ppm), so
    a rise of more than ``threshold_s`` over the lowest value of the last ``window_s`` seconds is
    audio that never reached us (the process or its capture thread was stalled).
    """

    def __init__(self, rate: int, threshold_s: float = 0.5, window_s: float = 30.0) -> None:
        self.rate = rate
        self.threshold_s = threshold_s
        self.window_s = window_s
        self._t0: float | None = None
        self._frames = 0
        self._history: collections.deque[tuple[float, float]] = collections.deque()

    def update(self, now: float, frames: int, waited: bool) -> float:
        """Seconds of audio found missing with this read (0.0 almost always)."""
        if self._t0 is None:
            self._t0 = now - frames / self.rate
        self._frames += frames
        if not waited:
            return 0.0
        lag = (now - self._t0) - self._frames / self.rate
        while self._history and self._history[0][0] < now - self.window_s:
            self._history.popleft()
        base = min((value for _, value in self._history), default=lag)
        self._history.append((now, lag))
        if lag - base > self.threshold_s:
            self._history.clear()
            self._history.append((now, lag))
            return lag - base
        return 0.0


def pick_device(devices: Sequence[dict[str, Any]], wanted: str | int, default_index: int | None) -> dict[str, Any]:
    """The input device matching ``wanted`` (index, or case-insensitive name substring; "" = default)."""
    inputs = [d for d in devices if int(d.get("maxInputChannels", 0)) > 0]
    if isinstance(wanted, int):
        for d in inputs:
            if int(d["index"]) == wanted:
                return d
        names = ", ".join(f"{d['index']}: {d['name']!r}" for d in inputs) or "none"
        raise SourceUnavailable(f"no input device with index {wanted}; available inputs: {names}")
    if wanted == "":
        for d in inputs:
            if default_index is not None and int(d["index"]) == default_index:
                return d
        if inputs:
            return inputs[0]
        raise SourceUnavailable("no audio input device found (see genre-daemon --list-devices)")
    matches = [d for d in inputs if wanted.lower() in str(d["name"]).lower()]
    if not matches:
        names = ", ".join(f"{d['index']}: {d['name']!r}" for d in inputs) or "none"
        raise SourceUnavailable(f"no input device matching {wanted!r}; available inputs: {names}")
    return matches[0]


def pick_rate(device: dict[str, Any], wanted: int, supported: Callable[[int], bool]) -> int:
    """``wanted`` if non-zero, else the device's default rate, else the first supported common rate (Hz)."""
    if wanted:
        if supported(wanted):
            return wanted
        raise SourceUnavailable(f"device {device['name']!r} does not support {wanted} Hz")
    candidates = [int(float(device.get("defaultSampleRate", 0))), *list(PREFERRED_RATES)]
    for rate in candidates:
        if rate > 0 and supported(rate):
            return rate
    raise SourceUnavailable(f"device {device['name']!r} supports none of {', '.join(map(str, PREFERRED_RATES))} Hz")


def quiet_native_stderr() -> contextlib.AbstractContextManager[None]:
    """Divert fd 2 while PortAudio probes ALSA/JACK: it prints dozens of harmless lines per init."""
    return native_stderr_to_debug(log, "PortAudio")


def list_devices() -> list[dict[str, Any]]:
    """PortAudio's devices with input channels (index, name, maxInputChannels, defaultSampleRate)."""
    import pyaudio

    with quiet_native_stderr():
        pa = pyaudio.PyAudio()
    try:
        infos = [pa.get_device_info_by_index(i) for i in range(pa.get_device_count())]
        return [dict(d) for d in infos if int(d.get("maxInputChannels", 0)) > 0]
    finally:
        pa.terminate()


class MicSource:
    """PyAudio capture in a dedicated thread; converts, resamples and queues mono chunks.

    With a :class:`WindowGrid` the thread reads up to the next window end (in reads of at most
    0.5 s, so a stop is seen quickly) and converts, resamples and queues that once: Python and
    numpy run once per hop instead of once per chunk, and the audio that completes a window is
    queued as soon as it is captured.
    """

    def __init__(
        self, settings: SourceSettings, sample_rate: int, stop: threading.Event, grid: WindowGrid | None = None
    ) -> None:
        self.settings = settings
        self.sample_rate = sample_rate
        self.stop = stop
        self.grid = grid
        self.stats = SourceStats()
        item_s = grid.step / sample_rate if grid else settings.chunk_s
        capacity = max(2, round(settings.queue_s / item_s))
        # (generation, chunk): audio captured before a reopen is dropped, not mixed with the new stream's.
        self._queue: queue.Queue[tuple[int, FloatArray]] = queue.Queue(maxsize=capacity)
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()
        self._pa: Any = None
        self._stream: Any = None
        self._status = OK
        self._generation = 0
        self.device_name = ""
        self.capture_rate = 0
        self.channels = 0
        self.last_attempt = 0.0  # monotonic time of the last reopen attempt (watchdog liveness)

    @property
    def finished(self) -> bool:
        return False

    @property
    def status(self) -> str:
        return self._status

    @property
    def generation(self) -> int:
        return self._generation

    def open(self) -> None:
        """Open the device now (SourceUnavailable if impossible) and start the capture thread."""
        self._open_stream()
        self._thread = threading.Thread(target=self._run, name="capture", daemon=True)
        self._thread.start()

    def _open_stream(self) -> None:
        import pyaudio

        self.last_attempt = time.monotonic()
        with quiet_native_stderr():
            self._pa = pyaudio.PyAudio()
        try:
            pa = self._pa
            devices = [dict(pa.get_device_info_by_index(i)) for i in range(pa.get_device_count())]
            try:
                default_index: int | None = int(pa.get_default_input_device_info()["index"])
            except OSError:
                default_index = None
            device = pick_device(devices, self.settings.device, default_index)
            fmt = pyaudio.paInt16 if self.settings.sample_format == "int16" else pyaudio.paFloat32
            channels = self.settings.channels or (1 if self._supported(device, 1, fmt, None) else 0)
            channels = channels or min(2, int(device["maxInputChannels"]))
            rate = pick_rate(device, self.settings.rate, lambda r: self._supported(device, channels, fmt, r))
            frames = max(1, round(self.settings.chunk_s * rate))
            with quiet_native_stderr():
                self._stream = pa.open(
                    format=fmt,
                    channels=channels,
                    rate=rate,
                    input=True,
                    input_device_index=int(device["index"]),
                    frames_per_buffer=frames,
                )
        except SourceUnavailable:
            self._release()
            raise
        except (OSError, ValueError) as exc:
            self._release()
            raise SourceUnavailable(f"cannot open audio input: {exc}") from None
        self.device_name, self.capture_rate, self.channels, self._frames = str(device["name"]), rate, channels, frames
        self._resampler = StreamResampler(rate, self.sample_rate)
        self._loss = LossDetector(rate)
        # Reads within a hop block only hand bytes over: up to 0.5 s each (a stop is still seen well
        # within close()'s 1 s), and the last one ends exactly at the window end.
        self._read_frames = max(frames, round(0.5 * rate)) if self.grid else frames
        self._in_total = 0  # frames captured since this stream opened
        self._out_total = 0  # samples after resampling (what the classifier has counted since its reset)
        log.info(
            "mic %r: %d Hz, %d ch, %s, %d frames/chunk",
            self.device_name,
            rate,
            channels,
            self.settings.sample_format,
            frames,
        )

    def _supported(self, device: dict[str, Any], channels: int, fmt: int, rate: int | None) -> bool:
        try:
            return bool(
                self._pa.is_format_supported(
                    rate or float(device["defaultSampleRate"]),
                    input_device=int(device["index"]),
                    input_channels=channels,
                    input_format=fmt,
                )
            )
        except ValueError:
            return False

    def _release(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.stop_stream()
                stream.close()
            except OSError as exc:
                log.debug("closing stream: %s", exc)
        pa, self._pa = self._pa, None
        if pa is not None:
            pa.terminate()

    def _run(self) -> None:
        backoff = 1.0
        last_overflow_log = 0.0
        while not (self.stop.is_set() or self._closing.is_set()):
            if self._stream is None:
                try:
                    self._open_stream()
                except SourceUnavailable as exc:
                    log.warning("audio input unavailable (%s); retrying in %.0f s", exc, backoff)
                    self._closing.wait(backoff)
                    backoff = min(backoff * 2, self.settings.retry_max_s)
                    continue
                self.stats.reconnects += 1
                self._generation += 1
                self._status = OK
                backoff = 1.0
                log.info("audio input back (reconnect %d)", self.stats.reconnects)
            block = self._read_block(self._frames_wanted(), last_overflow_log)
            if block is None:
                continue
            raw, last_overflow_log = block
            mono = interleaved_to_mono(raw, self.settings.sample_format, self.channels)
            chunk = self._resampler.process(mono)
            self._in_total += mono.size
            self._out_total += chunk.size
            self._put(chunk)
        self._release()

    def _frames_wanted(self) -> int:
        """Capture frames to read before converting: up to the next window end, or one chunk."""
        if self.grid is None:
            return self._frames
        ratio = self.sample_rate / self.capture_rate
        # The resampler holds back a few samples (its filter delay): ask for those too.
        held = max(0.0, self._in_total * ratio - self._out_total)
        need = self.grid.next_end(self._out_total) - self._out_total + held
        frames: int = math.ceil(need / ratio)
        return max(1, frames)

    def _read_block(self, frames: int, last_overflow_log: float) -> tuple[bytes, float] | None:
        """``frames`` frames in reads of at most one chunk; None if the device failed (now released)."""
        parts: list[bytes] = []
        remaining = frames
        while remaining > 0 and not (self.stop.is_set() or self._closing.is_set()):
            n = min(remaining, self._read_frames)
            try:
                t_read = time.monotonic()
                raw = self._stream.read(n, exception_on_overflow=True)
                now = time.monotonic()
            except OSError as exc:
                if exc.errno == PA_INPUT_OVERFLOWED:
                    self.stats.overflows += 1
                    now = time.monotonic()
                    if now - last_overflow_log > 10:
                        log.warning("input overflow (%d so far): audio was lost", self.stats.overflows)
                        last_overflow_log = now
                    continue
                log.error("audio input failed (%s); reopening", exc)
                self._status = UNAVAILABLE
                self._release()
                return None
            remaining -= n
            parts.append(raw)
            lost_s = self._loss.update(now, n, waited=now - t_read >= 0.5 * n / self.capture_rate)
            if lost_s:
                self.stats.overflows += 1
                if now - last_overflow_log > 10:
                    log.warning("%.1f s of audio lost upstream (stalled; %d so far)", lost_s, self.stats.overflows)
                    last_overflow_log = now
        return b"".join(parts), last_overflow_log

    def _put(self, chunk: FloatArray) -> None:
        item = (self._generation, chunk)
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            # Keep the newest audio: the pipeline wants the latest window, not a backlog.
            with contextlib.suppress(queue.Empty):
                self._queue.get_nowait()
            self.stats.dropped_chunks += 1
            self._queue.put_nowait(item)

    def read(self, timeout: float) -> FloatArray | None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                generation, chunk = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return None
            if generation == self._generation:
                return chunk

    def close(self) -> None:
        self._closing.set()
        if self._thread is not None:
            # A blocking read returns within one chunk; the thread then releases PortAudio itself.
            self._thread.join(timeout=1.0)
            if self._thread.is_alive():
                log.warning("capture thread did not stop within 1 s")
            self._thread = None
        else:
            self._release()
