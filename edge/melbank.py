"""The two front ends' mel filterbanks in plain numpy: Slaney's (librosa's default, ``htk=False,
norm="slaney"``) for the tagger, and python_speech_features' (HTK mel, bin-floored triangles) for the MFCC CNNs.

The models were trained on those libraries' filterbanks; the edge imports neither (librosa pulls numba and
~100 MB onto a Pi, python_speech_features pulls scipy), so each bank is rebuilt here from its definition and a
test holds it to the library's.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
_F_SP = 200.0 / 3  # Slaney: linear below 1 kHz, 3 mel per 200 Hz
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = np.log(6.4) / 27.0  # logarithmic above 1 kHz: 27 mel per factor 6.4


def hz_to_mel(hz: F64) -> F64:
    hz = np.asarray(hz, dtype=np.float64)
    log_part = _MIN_LOG_MEL + np.log(np.maximum(hz, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP
    out: F64 = np.where(hz >= _MIN_LOG_HZ, log_part, hz / _F_SP)
    return out


def mel_to_hz(mel: F64) -> F64:
    mel = np.asarray(mel, dtype=np.float64)
    out: F64 = np.where(mel >= _MIN_LOG_MEL, _MIN_LOG_HZ * np.exp(_LOGSTEP * (mel - _MIN_LOG_MEL)), _F_SP * mel)
    return out


def slaney_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None) -> F64:
    """(n_mels, 1 + n_fft // 2) triangular filters, each scaled to unit area in Hz (Slaney's normalisation)."""
    fmax = sample_rate / 2 if fmax is None else fmax
    fft_hz = np.linspace(0.0, sample_rate / 2, 1 + n_fft // 2)
    edges = mel_to_hz(np.linspace(hz_to_mel(np.array(fmin)), hz_to_mel(np.array(fmax)), n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_hz[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights: F64 = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights


def psf_filterbank(n_filters: int, n_fft: int, sample_rate: int, low_hz: float = 0.0,
                   high_hz: float | None = None) -> F64:
    """(n_filters, 1 + n_fft // 2) python_speech_features filters: HTK mel points floored to FFT bins, peak 1."""
    high_hz = high_hz or sample_rate / 2
    mels = np.linspace(2595.0 * np.log10(1 + low_hz / 700.0), 2595.0 * np.log10(1 + high_hz / 700.0), n_filters + 2)
    bins = np.floor((n_fft + 1) * (700.0 * (10.0 ** (mels / 2595.0) - 1)) / sample_rate)
    bank = np.zeros((n_filters, n_fft // 2 + 1))
    for j in range(n_filters):
        lo, mid, hi = bins[j], bins[j + 1], bins[j + 2]
        rise = np.arange(int(lo), int(mid))
        bank[j, rise] = (rise - lo) / (mid - lo)
        fall = np.arange(int(mid), int(hi))
        bank[j, fall] = (hi - fall) / (hi - mid)
    return bank
