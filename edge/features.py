"""MFCC frames for batch (a whole clip) and streaming (a microphone), bit-for-bit the same.

The maths is python_speech_features' (its filterbank, power spectrum and lifter, the same DCT) in numpy alone
(scipy and python_speech_features stay out of the daemon: ~15 MB of imports for two small matrices), but
frames are computed only once each: a stream pushes samples of any chunk size and gets only the
*new* frames, kept in a preallocated ring from which the latest window is read as a view.
Only complete frames are produced (psf zero-pads a trailing partial frame; a stream cannot know
where the audio ends, so neither side keeps that frame).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import numpy.typing as npt

from edge.melbank import psf_filterbank, slaney_filterbank
from edge.spec import FeatureSpec

FloatArray = npt.NDArray[np.float32]
AnyFloat = npt.NDArray[np.floating[Any]]
_EPS = float(np.finfo(float).eps)  # psf's floor before log()
_BLOCK_FRAMES = 64  # frames per FFT batch: ~1 MB of float64 temporaries, cache-sized on a Pi too
_CVN_FLOOR = 1e-3  # spread below which a window counts as constant


def dct_ortho(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Orthonormal DCT-II along the last axis (scipy's ``dct(x, type=2, norm="ortho")``), through one FFT.

    Makhoul's reordering: even samples ascending, then odd samples descending, make the DCT the real part of a
    rotated FFT. Not a matrix product: a 64 x 96 x 96 matmul is big enough for OpenBLAS to hand it to a second
    thread, which costs more than the arithmetic on a busy Pi.
    """
    n = x.shape[-1]
    v = np.concatenate((x[..., ::2], x[..., 1::2][..., ::-1]), axis=-1)
    k = np.arange(n)
    scale = np.full(n, np.sqrt(2.0 / n))
    scale[0] = np.sqrt(1.0 / n)
    out: npt.NDArray[np.float64] = (np.fft.fft(v, axis=-1) * (np.exp(-0.5j * np.pi * k / n) * scale)).real
    return out


def _window_function(name: str, length: int) -> npt.NDArray[np.float64]:
    if name == "hann":
        return np.hanning(length + 1)[:-1]  # periodic, as spectral analysis wants
    if name == "hamming":
        return np.hamming(length + 1)[:-1]
    return np.ones(length)


class _BandedFilterbank:
    """A mel filterbank applied without a dense matmul (same sums, ~13x fewer multiply-adds).

    Each triangular filter is a short contiguous run of FFT bins and only overlaps its neighbours,
    so the filters split into a few groups (two for a mel bank) of mutually disjoint runs; one
    multiply plus one ``np.add.reduceat`` per group does the whole bank. This replaces
    ``power @ fbank.T``, which OpenBLAS runs multi-threaded once m*n*k > 262144 (43 frames x 1025
    bins x 26 filters already is): on a busy 2-4 core machine the thread hand-off cost 2-7 ms per
    hop against ~0.1 ms of arithmetic. reduceat is single-threaded and sums each row on its own,
    so a frame gets the same bits whichever batch it is computed in (streaming == batch).
    """

    def __init__(self, fbank: npt.NDArray[np.float64], scale: float) -> None:
        self.n_filters, n_bins = fbank.shape
        runs: list[tuple[int, int, int]] = []  # (first bin, end bin, filter)
        for j, row in enumerate(fbank):
            nz = np.flatnonzero(row)
            if nz.size:  # an all-zero filter stays exactly 0, as in the dense product
                runs.append((int(nz[0]), int(nz[-1]) + 1, j))
        groups: list[list[tuple[int, int, int]]] = []
        for run in sorted(runs):
            for group in groups:
                if group[-1][1] <= run[0]:
                    group.append(run)
                    break
            else:
                groups.append([run])
        # Per group: a weight per bin (0 between runs, so gaps add exact zeros), run starts, filter ids.
        self._groups: list[tuple[npt.NDArray[np.float64], npt.NDArray[np.intp], npt.NDArray[np.intp]]] = []
        for group in groups:
            weights = np.zeros(n_bins)
            for lo, hi, j in group:
                weights[lo:hi] = fbank[j, lo:hi] * scale
            starts = np.array([lo for lo, _, _ in group], dtype=np.intp)
            ids = np.array([j for _, _, j in group], dtype=np.intp)
            self._groups.append((weights, starts, ids))
        # reduceat sums the last run up to the end of the row: the zero weights there add nothing.

    def apply(self, power: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """(n, n_bins) power spectra -> (n, n_filters) filterbank energies."""
        out = np.zeros((power.shape[0], self.n_filters))
        for weights, starts, ids in self._groups:
            out[:, ids] = np.add.reduceat(power * weights, starts, axis=1)
        return out


class MfccEngine:
    """Turns pre-emphasised frames into MFCCs; precomputes the filterbank, window and lifter once.

    Same maths as python_speech_features.mfcc (to ~1e-12), but cheaper per frame: numpy's pocketfft,
    |X|^2 as re^2 + im^2 (no sqrt then square), psf's 1/NFFT folded into the filterbank weights,
    and the banded filterbank above instead of a dense (multi-threaded BLAS) matmul.
    """

    def __init__(self, spec: FeatureSpec) -> None:
        self.spec = spec
        self._window = _window_function(spec.winfunc, spec.win_length)
        fbank = psf_filterbank(spec.n_mels, spec.n_fft, spec.sample_rate, spec.low_hz, spec.effective_high_hz)
        self._fbank = _BandedFilterbank(fbank, 1.0 / spec.n_fft)
        n = np.arange(spec.n_mfcc)
        lift = spec.ceplifter
        self._lift = 1 + (lift / 2.0) * np.sin(np.pi * n / lift) if lift > 0 else None
        self._floor = None if spec.mel_floor_db is None else 10.0 ** (-spec.mel_floor_db / 10.0)

    def frames_to_mfcc(self, frames: npt.NDArray[np.float64]) -> FloatArray:
        """(n, win_length) pre-emphasised samples -> (n, n_mfcc) float32 MFCCs."""
        n = frames.shape[0]
        if n <= _BLOCK_FRAMES:
            return self._block(frames)
        # A 30 s clip in one go makes 20 MB temporaries per step; blocks that stay in cache are 2-3x faster.
        # Every step is per row, so blocking changes no bit (and streaming still equals batch).
        out = np.empty((n, self.spec.n_mfcc), dtype=np.float32)
        for i in range(0, n, _BLOCK_FRAMES):
            out[i : i + _BLOCK_FRAMES] = self._block(frames[i : i + _BLOCK_FRAMES])
        return out

    def _block(self, frames: npt.NDArray[np.float64]) -> FloatArray:
        spec = self.spec
        if frames.shape[0] == 0:
            return np.zeros((0, spec.n_mfcc), dtype=np.float32)
        spectrum = np.fft.rfft(frames * self._window, spec.n_fft, axis=1)
        power = np.square(spectrum.real)
        power += np.square(spectrum.imag)  # unscaled: 1/NFFT is in the filterbank and the energy
        feat = self._fbank.apply(power)
        if self._floor is not None:  # frame-local, so streaming still equals batch
            np.maximum(feat, feat.max(axis=1, keepdims=True) * self._floor, out=feat)
        feat[feat == 0] = _EPS  # psf's floor, only for exact zeros (digital silence)
        ceps = dct_ortho(np.log(feat))[:, : spec.n_mfcc]
        if self._lift is not None:
            ceps *= self._lift
        if spec.append_energy:
            energy = power.sum(axis=1) * (1.0 / spec.n_fft)
            energy[energy == 0] = _EPS
            ceps[:, 0] = np.log(energy)
        return np.asarray(ceps, dtype=np.float32)


class LogMelEngine:
    """The tagger's input (``front_end = "musicnn"``): power mel spectrum -> log10(10000 x + 1) -> DCT-II.

    As musicnn computes it with librosa (periodic Hann, |X|^2 unscaled, Slaney mel, values rounded through
    float16, which its own code computes in), but on the frame grid every window shares: frame i starts at
    sample 256 i (librosa centres frames, so its frame i + 1 is this frame i). The orthonormal DCT keeps all
    coefficients; the exported model undoes it exactly with its first op.
    """

    def __init__(self, spec: FeatureSpec) -> None:
        self.spec = spec
        self._window = _window_function(spec.winfunc, spec.win_length)
        bank = slaney_filterbank(spec.sample_rate, spec.n_fft, spec.n_mels, spec.low_hz, spec.effective_high_hz)
        self._fbank = _BandedFilterbank(bank, 1.0)

    def frames_to_mfcc(self, frames: npt.NDArray[np.float64]) -> FloatArray:
        """(n, win_length) samples -> (n, n_mels) float32 cepstra of the tagger's log-mel frames."""
        out = np.empty((frames.shape[0], self.spec.n_mfcc), dtype=np.float32)
        for i in range(0, frames.shape[0], _BLOCK_FRAMES):
            out[i : i + _BLOCK_FRAMES] = self.log_mel_to_cepstra(self.log_mel(frames[i : i + _BLOCK_FRAMES]))
        return out

    def log_mel(self, frames: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """(n, win_length) samples -> (n, n_mels) log-mel frames, exactly what the tagger was trained on."""
        spectrum = np.fft.rfft(frames * self._window, self.spec.n_fft, axis=1)
        power = np.square(spectrum.real)
        power += np.square(spectrum.imag)
        mel = self._fbank.apply(power)
        # Through float16 as musicnn does; clamped under its largest finite value (a full-scale square wave in
        # one band would otherwise round to inf).
        rounded = np.minimum(mel, _F16_MAX).astype(np.float16).astype(np.float64)
        out: npt.NDArray[np.float64] = np.log10(10000.0 * rounded + 1.0)
        return out

    @staticmethod
    def log_mel_to_cepstra(log_mel: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return dct_ortho(log_mel)


Engine = MfccEngine | LogMelEngine
_F16_MAX = float(np.finfo(np.float16).max)


def make_engine(spec: FeatureSpec) -> Engine:
    """The front end ``spec.front_end`` names."""
    return LogMelEngine(spec) if spec.front_end == "musicnn" else MfccEngine(spec)


@functools.lru_cache(maxsize=8)
def _shared_engine(spec: FeatureSpec) -> Engine:
    """One engine per spec (it is read-only after construction): building one costs ~2.5 ms, 4% of a clip."""
    return make_engine(spec)


def preemphasize(signal: AnyFloat, coeff: float, previous: float = 0.0) -> npt.NDArray[np.float64]:
    """y[n] = x[n] - coeff * x[n-1]; ``previous`` is x[-1] (0 at the start, as psf does)."""
    x = np.asarray(signal, dtype=np.float64)
    out = np.empty_like(x)
    if x.size:
        out[0] = x[0] - coeff * previous
        # In place in ``out``: the same two roundings as x[1:] - coeff * x[:-1], without two temporaries.
        np.multiply(x[:-1], coeff, out=out[1:])
        np.subtract(x[1:], out[1:], out=out[1:])
    return out


def _frame_view(samples: npt.NDArray[np.float64], spec: FeatureSpec, count: int) -> npt.NDArray[np.float64]:
    if count == 0:
        return np.zeros((0, spec.win_length))
    # as_strided directly: sliding_window_view's argument checks cost ~0.15 ms per call, 10% of a hop.
    step = samples.strides[0]
    return np.lib.stride_tricks.as_strided(
        samples, shape=(count, spec.win_length), strides=(step * spec.hop_length, step), writeable=False
    )


def complete_frames(n_samples: int, spec: FeatureSpec) -> int:
    """How many complete frames ``n_samples`` samples hold."""
    if n_samples < spec.win_length:
        return 0
    return 1 + (n_samples - spec.win_length) // spec.hop_length


def mfcc(signal: AnyFloat, spec: FeatureSpec, engine: Engine | None = None) -> FloatArray:
    """MFCC frames of a whole signal at ``spec.sample_rate``: (n_frames, n_mfcc) float32.

    Equals python_speech_features.mfcc with the spec's parameters, minus its zero-padded last frame.
    """
    engine = engine or _shared_engine(spec)
    pre = preemphasize(signal, spec.preemph)
    return engine.frames_to_mfcc(_frame_view(pre, spec, complete_frames(pre.size, spec)))


def window_starts(n_frames: int, spec: FeatureSpec, hop_frames: int | None = None) -> range:
    """Start frame of every full window in ``n_frames`` frames, ``hop_frames`` apart."""
    step = hop_frames or spec.hop_frames
    return range(0, max(0, n_frames - spec.frames_per_window + 1), step)


def normalize_window(frames: npt.NDArray[np.float32], spec: FeatureSpec, out: FloatArray | None = None) -> FloatArray:
    """One window of raw MFCC frames -> the model's input (CMN, then the trainer's mean/std).

    Works on (..., frames, n_mfcc) so the trainer can normalise a whole batch at once; pass a
    preallocated ``out`` in the hot path.
    """
    result = np.empty(frames.shape, dtype=np.float32) if out is None else out
    if spec.cmn:
        np.subtract(frames, frames.mean(axis=-2, keepdims=True), out=result)
    else:
        np.copyto(result, frames)
    if spec.cvn:
        # The floor keeps a constant window (digital silence) at 0 instead of 0/0; |z| <= sqrt(frames) otherwise.
        spread = np.sqrt(np.mean(np.square(result), axis=-2, keepdims=True)) if spec.cmn else result.std(
            axis=-2, keepdims=True)
        result /= np.maximum(spread, _CVN_FLOOR)
    if spec.mean is not None and spec.std is not None:
        result -= np.asarray(spec.mean, dtype=np.float32)
        result /= np.asarray(spec.std, dtype=np.float32)
    return result


class StreamingMfcc:
    """Push PCM chunks of any size; compute each MFCC frame exactly once; read the latest window.

    Pre-emphasis state and the partial frame carry across pushes, so any chunking of the same audio
    gives the same frames as :func:`mfcc` on the whole of it. The ring stores every frame twice
    (at i and i + capacity) so the latest window is always one contiguous view, never a copy.
    """

    def __init__(self, spec: FeatureSpec, capacity: int | None = None) -> None:
        self.spec = spec
        self.capacity = capacity or spec.frames_per_window
        if self.capacity < spec.frames_per_window:
            raise ValueError("capacity must hold at least one window of frames")
        self._engine = make_engine(spec)
        self._ring = np.zeros((2 * self.capacity, spec.n_mfcc), dtype=np.float32)
        self.reset()

    def reset(self) -> None:
        """Forget all audio (e.g. after a capture gap, so no window spans the gap)."""
        self._pending = np.zeros(0, dtype=np.float64)
        self._previous = 0.0
        self.frames_total = 0
        self.samples_total = 0

    def push(self, chunk: AnyFloat) -> FloatArray:
        """Add mono samples at ``spec.sample_rate``; return only the new frames (n_new, n_mfcc)."""
        x = np.asarray(chunk, dtype=np.float64).reshape(-1)
        if x.size == 0:
            return np.zeros((0, self.spec.n_mfcc), dtype=np.float32)
        pre = preemphasize(x, self.spec.preemph, self._previous)
        self._previous = float(x[-1])
        self.samples_total += x.size
        pending = np.concatenate((self._pending, pre)) if self._pending.size else pre
        count = complete_frames(pending.size, self.spec)
        new = self._engine.frames_to_mfcc(_frame_view(pending, self.spec, count))
        self._pending = pending[count * self.spec.hop_length :].copy()
        self._store(new)
        return new

    def _store(self, new: FloatArray) -> None:
        keep = new[-self.capacity :]
        start = self.frames_total + new.shape[0] - keep.shape[0]
        rows = (start + np.arange(keep.shape[0])) % self.capacity
        self._ring[rows] = keep
        self._ring[rows + self.capacity] = keep
        self.frames_total += new.shape[0]

    def latest_window(self) -> FloatArray | None:
        """The newest ``frames_per_window`` frames as a read-only view, or None until enough audio."""
        n = self.spec.frames_per_window
        if self.frames_total < n:
            return None
        end = self.frames_total % self.capacity + self.capacity
        view = self._ring[end - n : end]
        view.flags.writeable = False
        return view
