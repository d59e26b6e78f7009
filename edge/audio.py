"""Audio in: decode files (wav/ogg/flac/au via libsndfile), mix to mono, resample with soxr.

Everything returned is float32 mono in [-1, 1] at the rate asked for. Anything unusable raises
AudioDecodeError with one line that names the file and the problem.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import soundfile as sf
import soxr

from edge.errors import AudioDecodeError, UsageError

FloatArray = npt.NDArray[np.float32]
AnyFloat = npt.NDArray[np.floating[Any]]


def to_mono(samples: AnyFloat) -> FloatArray:
    """(frames, channels) or (frames,) -> (frames,) float32, averaging channels."""
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim == 2:
        if x.shape[1] == 0:
            raise AudioDecodeError("audio has 0 channels")
        x = x.mean(axis=1, dtype=np.float32) if x.shape[1] > 1 else x[:, 0]
    return np.ascontiguousarray(x, dtype=np.float32)


def resample(samples: FloatArray, from_rate: int, to_rate: int) -> FloatArray:
    """Band-limited resampling of a whole mono signal (soxr 'HQ'); a no-op at equal rates."""
    if from_rate == to_rate:
        return samples
    return np.asarray(soxr.resample(samples, from_rate, to_rate, quality="HQ"), dtype=np.float32)


class StreamResampler:
    """Resample a stream chunk by chunk with filter state carried between chunks (for capture)."""

    def __init__(self, from_rate: int, to_rate: int) -> None:
        self.from_rate = from_rate
        self.to_rate = to_rate
        self._stream = (
            None if from_rate == to_rate else soxr.ResampleStream(from_rate, to_rate, 1, dtype="float32", quality="HQ")
        )

    def process(self, chunk: FloatArray, last: bool = False) -> FloatArray:
        if self._stream is None:
            return chunk
        return np.asarray(self._stream.resample_chunk(chunk, last=last), dtype=np.float32)


def load_audio(path: str | Path, sample_rate: int) -> FloatArray:
    """Decode ``path`` to float32 mono at ``sample_rate`` Hz.

    Raises UsageError if the file does not exist and AudioDecodeError if it cannot be decoded,
    is empty, or holds NaN/Inf samples.
    """
    p = Path(path)
    if not p.exists():
        raise UsageError(f"{p}: no such file")
    if p.is_dir():
        raise UsageError(f"{p}: is a directory, not an audio file")
    try:
        data, rate = sf.read(str(p), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
        raise AudioDecodeError(f"{p}: cannot decode audio ({_short(exc)})") from None
    except OSError as exc:
        raise AudioDecodeError(f"{p}: cannot read ({exc.strerror or exc})") from None
    if data.shape[1] == 0:
        raise AudioDecodeError(f"{p}: audio has 0 channels")
    if data.shape[0] == 0:
        raise AudioDecodeError(f"{p}: audio is empty (0 samples)")
    if not np.isfinite(data).all():
        raise AudioDecodeError(f"{p}: audio contains NaN or infinite samples")
    return resample(to_mono(data), int(rate), sample_rate)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__
