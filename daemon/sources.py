"""Audio sources behind one small interface (``daemon.source_base``): a microphone (``daemon.mic``) or a file
paced in time.

Both deliver mono float32 chunks at the model's sample rate, up to the classifier's next window end
at a time (``daemon.window_grid``). The file source decodes a few seconds ahead in the caller's
thread (pacing with the stop event, so it never outlives a stop); the microphone has its own
capture thread and queue.
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
from daemon.window_grid import WindowGrid
from edge.audio import StreamResampler, to_mono
from edge.errors import AudioDecodeError

log = logging.getLogger(__name__)


class FileSource:
    """Decodes wav/ogg/flac a few seconds ahead and resamples in a stream (memory stays bounded).

    ``speed`` 1 paces the audio at real time, N at N times real time, 0 as fast as the pipeline
    reads. Paced audio is due at the start of its ``chunk_s`` block (as if captured block by
    block); with a :class:`WindowGrid`, one read returns everything up to the next window end once
    the last of it is due, so no window is classified later than with block-by-block reads.
    """

    DECODE_S = 4.0  # input decoded per libsndfile call

    def __init__(
        self, settings: SourceSettings, sample_rate: int, stop: threading.Event, grid: WindowGrid | None = None
    ) -> None:
        self.path = Path(settings.path)
        self.sample_rate = sample_rate
        self.speed = settings.speed
        self.loop = settings.loop
        self.chunk_s = settings.chunk_s
        self.stop = stop
        self.grid = grid
        self.stats = SourceStats()
        self._file: Any = None
        self._resampler: StreamResampler | None = None
        self._finished = False
        self._eof = False
        self._pending = np.zeros(0, dtype=np.float32)  # decoded, resampled, not yet handed out
        self._out = 0  # samples handed out (model rate)
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
        self._ratio = self.sample_rate / self._rate
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

    def _decode(self) -> None:
        assert self._file is not None and self._resampler is not None
        frames = max(self._block, round(self.DECODE_S * self._rate))
        data = self._file.read(frames, dtype="float32", always_2d=True)
        if data.shape[0] == 0 and self.loop:
            self._file.seek(0)
            self.loops += 1
            data = self._file.read(frames, dtype="float32", always_2d=True)
        if data.shape[0] == 0:
            self._eof = True
            out = self._resampler.process(np.zeros(0, dtype=np.float32), last=True)
        else:
            mono = to_mono(data)
            if not np.isfinite(mono).all():
                np.nan_to_num(mono, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
            out = self._resampler.process(mono)
        if out.size:
            self._pending = np.concatenate((self._pending, out)) if self._pending.size else out

    def _due(self, sample: int) -> float:
        """When output sample ``sample`` is due: at the start of its input block.

        Resampling only delays output, so ``sample / ratio`` is at or before the input sample
        it came from: the estimate errs early, never late.
        """
        block = int(sample / self._ratio) // self._block
        return self._t0 + block * self._block / self._rate / self.speed

    def read(self, timeout: float) -> FloatArray | None:
        if self._finished or self._file is None:
            if self._finished:
                self.stop.wait(timeout)  # nothing more will come; keep callers' loops from spinning
            return None
        end = self.grid.next_end(self._out) if self.grid else self._out + max(1, round(self._block * self._ratio))
        want = end - self._out
        while self._pending.size < want and not self._eof:
            self._decode()
        n = min(want, self._pending.size)
        if n == 0:
            self._finished = True
            return None
        if self.speed > 0:
            delay = self._due(self._out + n - 1) - time.monotonic()
            if delay > 0 and (self.stop.wait(min(delay, timeout)) or delay > timeout):
                return None
        chunk, self._pending = self._pending[:n], self._pending[n:]
        self._out += n
        return np.ascontiguousarray(chunk)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def make_source(
    settings: SourceSettings, sample_rate: int, stop: threading.Event, grid: WindowGrid | None = None
) -> AudioSource:
    if settings.kind == "file":
        return FileSource(settings, sample_rate, stop, grid)
    from daemon.mic import MicSource  # PyAudio/PortAudio only when a microphone is used

    return MicSource(settings, sample_rate, stop, grid)
