"""Audio sources behind one small interface (``daemon.source_base``): a microphone (``daemon.mic``) or a file
paced in time.

Both deliver mono float32 chunks at the model's sample rate. The file source decodes block by
block in the caller's thread (pacing with the stop event, so it never outlives a stop); the
microphone has its own capture thread and queue.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from daemon.settings import SourceSettings
from daemon.source_base import OK, FloatArray, SourceStats
from daemon.source_base import AudioSource as AudioSource  # re-exported: what make_source returns
from edge.audio import StreamResampler, to_mono
from edge.errors import AudioDecodeError

log = logging.getLogger(__name__)


class FileSource:
    """Decodes wav/ogg/flac block by block and resamples in a stream (memory stays bounded).

    ``speed`` 1 paces chunks at real time, N at N times real time, 0 as fast as the pipeline reads.
    """

    def __init__(self, settings: SourceSettings, sample_rate: int, stop: threading.Event) -> None:
        self.path = Path(settings.path)
        self.sample_rate = sample_rate
        self.speed = settings.speed
        self.loop = settings.loop
        self.chunk_s = settings.chunk_s
        self.stop = stop
        self.stats = SourceStats()
        self._file: Any = None
        self._resampler: StreamResampler | None = None
        self._finished = False
        self._emitted_s = 0.0  # audio seconds handed out (input side)
        self._t0 = 0.0
        self.loops = 0

    @property
    def finished(self) -> bool:
        return self._finished

    @property
    def status(self) -> str:
        return OK

    @property
    def generation(self) -> int:
        return 0

    def open(self) -> None:
        try:
            self._file = sf.SoundFile(str(self.path))
        except (sf.LibsndfileError, RuntimeError, ValueError, OSError) as exc:
            raise AudioDecodeError(
                f"{self.path}: cannot decode audio ({str(exc).strip() or type(exc).__name__})"
            ) from None
        if self._file.frames == 0 or self._file.channels == 0:
            self._file.close()
            raise AudioDecodeError(f"{self.path}: audio is empty")
        self._rate = int(self._file.samplerate)
        self._block = max(1, round(self.chunk_s * self._rate))
        self._resampler = StreamResampler(self._rate, self.sample_rate)
        self._t0 = time.monotonic()
        log.info(
            "file source %s: %.1f s, %d Hz, %d ch, speed %s%s",
            self.path,
            self._file.frames / self._rate,
            self._rate,
            self._file.channels,
            "max" if self.speed == 0 else f"{self.speed:g}x",
            ", looping" if self.loop else "",
        )

    def read(self, timeout: float) -> FloatArray | None:
        if self._finished or self._file is None or self._resampler is None:
            if self._finished:
                self.stop.wait(timeout)  # nothing more will come; keep callers' loops from spinning
            return None
        if self.speed > 0:
            due = self._t0 + self._emitted_s / self.speed
            delay = due - time.monotonic()
            if delay > 0 and (self.stop.wait(min(delay, timeout)) or delay > timeout):
                return None
        data = self._file.read(self._block, dtype="float32", always_2d=True)
        if data.shape[0] == 0:
            if self.loop:
                self._file.seek(0)
                self.loops += 1
                data = self._file.read(self._block, dtype="float32", always_2d=True)
            else:
                self._finished = True
                tail = self._resampler.process(np.zeros(0, dtype=np.float32), last=True)
                return tail if tail.size else None
        self._emitted_s += data.shape[0] / self._rate
        mono = to_mono(data)
        if not np.isfinite(mono).all():
            np.nan_to_num(mono, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        return self._resampler.process(mono)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def make_source(settings: SourceSettings, sample_rate: int, stop: threading.Event) -> AudioSource:
    if settings.kind == "file":
        return FileSource(settings, sample_rate, stop)
    from daemon.mic import MicSource  # PyAudio/PortAudio only when a microphone is used

    return MicSource(settings, sample_rate, stop)
