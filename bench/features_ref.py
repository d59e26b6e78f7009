"""What the features section compares ours against: bare numpy floors per front end, the reference libraries'
pipelines (python_speech_features, the seed's librosa MFCC, musicnn's librosa log-mel), and the timing loop.

A floor is the arithmetic every pipeline of that front end must do for ``n`` new frames, already framed, with
nothing else around it (no framing, no ring, no Python per frame): what "within N x of the floor" is measured to.
"""

from __future__ import annotations

import contextlib
import importlib
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import python_speech_features as psf
from python_speech_features import base as psf_base
from scipy.fftpack import dct as fftpack_dct

from bench.common import Row, time_calls
from edge.melbank import slaney_filterbank
from edge.spec import FeatureSpec

Arr = npt.NDArray[Any]
Variant = tuple[str, Callable[[], object], int | None, str]  # name, call, BLAS threads (None = default), note
BLOCK = 64  # frames per block, as edge.features: otherwise the "floor" would pay for 20 MB temporaries


@contextlib.contextmanager
def blas_threads(n: int | None) -> Iterator[None]:
    """Limit BLAS to ``n`` threads for a block (threadpoolctl); a no-op for None or without threadpoolctl."""
    if n is None:
        yield
        return
    try:
        threadpoolctl = importlib.import_module("threadpoolctl")  # librosa's dependency; untyped
    except ImportError:
        yield
        return
    with threadpoolctl.threadpool_limits(limits=n, user_api="blas"):
        yield


class _BlockedFloor:
    def __init__(self, frames: Arr) -> None:
        self.frames = np.ascontiguousarray(frames, dtype=np.float64)

    def __call__(self) -> Arr:
        if self.frames.shape[0] <= BLOCK:
            return self._block(self.frames)
        return np.concatenate([self._block(self.frames[i : i + BLOCK]) for i in range(0, self.frames.shape[0], BLOCK)])

    def _block(self, frames: Arr) -> Arr:
        raise NotImplementedError


class MfccFloor(_BlockedFloor):
    """rfft + power + dense mel matmul + log + DCT matmul of pre-emphasised frames (psf's maths, minus the lifter)."""

    def __init__(self, spec: FeatureSpec, frames: Arr) -> None:
        super().__init__(frames)
        self.window = np.hanning(spec.win_length + 1)[:-1]
        fb = psf_base.get_filterbanks(spec.n_mels, spec.n_fft, spec.sample_rate, spec.low_hz, spec.effective_high_hz)
        self.fbank_t = np.ascontiguousarray(fb.T) / spec.n_fft
        self.dct = np.ascontiguousarray(
            fftpack_dct(np.eye(spec.n_mels), type=2, norm="ortho", axis=0)[:, : spec.n_mfcc]
        )

    def _block(self, frames: Arr) -> Arr:
        spectrum = np.fft.rfft(frames * self.window, axis=1)
        power = spectrum.real**2 + spectrum.imag**2
        out: Arr = np.log(power @ self.fbank_t + 1e-12) @ self.dct
        return out


class LogMelFloor(_BlockedFloor):
    """The tagger's input: rfft + power + dense Slaney mel matmul + float16 rounding + log10(10000 x + 1) + DCT
    matmul. The float16 round trip is part of the required arithmetic (musicnn was trained on it)."""

    def __init__(self, spec: FeatureSpec, frames: Arr) -> None:
        super().__init__(frames)
        self.window = np.hanning(spec.win_length + 1)[:-1]
        bank = slaney_filterbank(spec.sample_rate, spec.n_fft, spec.n_mels, spec.low_hz, spec.effective_high_hz)
        self.fbank_t = np.ascontiguousarray(bank.T)
        self.dct = np.ascontiguousarray(fftpack_dct(np.eye(spec.n_mels), type=2, norm="ortho", axis=0))

    def _block(self, frames: Arr) -> Arr:
        spectrum = np.fft.rfft(frames * self.window, axis=1)
        power = spectrum.real**2 + spectrum.imag**2
        mel = (power @ self.fbank_t).astype(np.float16).astype(np.float64)
        out: Arr = np.log10(10000.0 * mel + 1.0) @ self.dct
        return out


def floor_for(spec: FeatureSpec, frames: Arr) -> _BlockedFloor:
    return LogMelFloor(spec, frames) if spec.front_end == "musicnn" else MfccFloor(spec, frames)


def psf_mfcc(x: Arr, spec: FeatureSpec) -> Arr:
    sr = spec.sample_rate
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out: Arr = psf.mfcc(
            x,
            sr,
            winlen=spec.win_length / sr,
            winstep=spec.hop_length / sr,
            numcep=spec.n_mfcc,
            nfilt=spec.n_mels,
            nfft=spec.n_fft,
            preemph=spec.preemph,
            ceplifter=spec.ceplifter,
            winfunc=lambda n: np.hanning(n + 1)[:-1],
        )
    return out


def librosa_mfcc(librosa: Any, x: Arr, spec: FeatureSpec) -> Arr:
    """Velardo's seed: ``librosa.feature.mfcc(y=signal[start:finish], sr, n_mfcc=13, n_fft=2048, hop_length=512).T``."""
    out: Arr = librosa.feature.mfcc(
        y=x, sr=spec.sample_rate, n_mfcc=spec.n_mfcc, n_fft=spec.n_fft, hop_length=spec.hop_length
    ).T
    return out


def musicnn_log_mel(librosa: Any, x: Arr, spec: FeatureSpec) -> Arr:
    """musicnn's own input code: librosa's mel spectrogram, through float16, log10(10000 x + 1)."""
    mel = librosa.feature.melspectrogram(
        y=x, sr=spec.sample_rate, hop_length=spec.hop_length, n_fft=spec.n_fft, n_mels=spec.n_mels
    ).T
    out: Arr = np.log10(10000 * mel.astype(np.float16) + 1)
    return out


class Pusher:
    """Feeds a streaming front end one hop at a time, cycling through the signal after a warm first window."""

    def __init__(self, stream: Any, signal: Arr, hop: int, start: int) -> None:
        self.stream, self.signal, self.hop, self.start, self.pos = stream, signal, hop, start, start
        stream.push(signal[:start])

    def __call__(self) -> object:
        if self.pos + self.hop > self.signal.size:
            self.pos = self.start
        out = self.stream.push(self.signal[self.pos : self.pos + self.hop])
        self.pos += self.hop
        return out


def measure(variants: list[Variant], repeats: int, rounds: int, unit_scale: float = 1e3) -> list[Row]:
    """Interleave the variants round by round; each block runs under its own BLAS thread limit."""
    rows = [Row(name, "ms", note=note) for name, _, _, note in variants]
    per = max(1, repeats // rounds)
    for r in range(rounds):
        for row, (_, fn, threads, _) in zip(rows, variants, strict=True):
            with blas_threads(threads):
                row.samples.extend(s * unit_scale for s in time_calls(fn, per, warmup=3 if r == 0 else 1))
            time.sleep(0.02)  # let OpenBLAS workers from the previous block stop spinning
    return rows
