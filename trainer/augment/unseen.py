"""Evaluation-only "unseen" degradations: rooms built with algorithms the training side never uses.

A head trained on copies from :mod:`trainer.augment.degrade` learnt that chain's fingerprints (its ISM
rooms, its pink/brown noise, its 50/60 Hz hum, its Butterworth band edges) rather than rooms in general,
and lost accuracy on a chain built differently. This family measures that gap; never train on it.

===============  ===========================================================================================
condition        algorithm and parameters (drawn uniformly per clip from the seed)
===============  ===========================================================================================
unseen_hiss      preamp hiss: white mixed with first-difference-filtered white (+6 dB/oct, 40-80 % of the
                 power), SNR 15-25 dB
unseen_fan       fan / air conditioner: white through 1-2 two-pole resonators (``iirpeak``, 200-800 Hz,
                 Q 0.7-2.5) plus a one-pole low-passed floor (1-3 kHz); blade-pass tone at 40-120 Hz with
                 3-6 harmonics (15-40 % of the power); amplitude modulation 0.5-3 Hz, depth 10-30 %;
                 SNR 8-18 dB
unseen_hum       fridge / appliance: asymmetrically clipped 100 or 120 Hz sine (drive 2-6: a buzzy comb of
                 odd and even harmonics) plus one-pole low-passed rumble (corner 30-120 Hz, 5-20 % of the
                 power), SNR 10-20 dB
unseen_reverb    synthetic RIR: unit direct path, 3-6 discrete reflections at 5-30 ms (gain 0.2-0.6, random
                 sign), exponentially decaying Gaussian tail split by raised-cosine crossovers at 250 Hz /
                 1 kHz / 4 kHz into 4 bands with RT60 x1.2-1.45 / x1.05-1.2 / x1.0-1.1 / x0.75-0.9 of a
                 broadband RT60 (T20) of 0.4-0.9 s, met within ~10 %; direct-to-reverberant ratio -4..+2 dB;
                 overlap-add convolution, trimmed to the input length
unseen_band      tiny speaker: Chebyshev-I high-pass (4th order, 1 dB ripple, 180-300 Hz), biased tanh cone
                 saturation (drive 1-2.5, bias 0-0.15: odd and even harmonics), elliptic low-pass (6th
                 order, 0.5 dB ripple, 50 dB stop band, 3.8-6 kHz)
unseen_room      unseen_reverb (RT60 0.5-0.8 s) -> fan or hum noise at 8-14 dB SNR -> unseen_band
                 -> level change -12..+3 dB
===============  ===========================================================================================

Every condition ends with an algebraic soft limiter ``x / (1 + x^4)^(1/4)``, applied only when the peak
passes full scale (the training chain's limiter is a tanh knee at 0.8), then a hard clip to [-1, 1].

Shared with the training chain (degrade.py), honestly: the noise conditions are additive noise mixed at an
SNR by the same helper (:func:`~trainer.augment.degrade.add_noise_at_snr`) and SNRs overlap (5-20 dB there);
the training hum's 2nd harmonic also sits at 100/120 Hz (here there is no 50/60 Hz line, and the clipped
waveform reaches far past its 7th harmonic), and the fan's blade-pass tone may land near 50/60 Hz;
reverberation is a convolution with an exponentially decaying response and RT60s overlap (0.2-0.8 s
there); the band edges' frequencies overlap (80-250 Hz / 4-8 kHz there) though the filter shapes differ;
unseen_room changes the level too. Not shared: no image-source rooms or pyroomacoustics, no pink/brown
FFT noise, no babble, no Butterworth filters, no audiomentations EQ, no AGC, no resampling, a different
limiter. Shared with the training noise augmentation (noise_aug.py): both add broadband noise at an SNR,
and its random +-6 dB EQ bumps can land on the fan's 200-800 Hz resonances. Not shared: noise_aug shapes
Gaussian noise in one FFT with a power-law slope (white to brown, never tilted up like the hiss), has no
tones, combs, modulation or reverb, and uses 2nd-order Butterworth band limits; these conditions use
time-domain filters and tones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import signal
from scipy.fft import irfft, next_fast_len, rfft, rfftfreq

from trainer.augment.degrade import add_noise_at_snr, mono64

__all__ = ["UNSEEN_CONDITIONS", "synthetic_rir", "unseen"]

FloatArray = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
AudioIn = npt.NDArray[np.floating[Any]]

UNSEEN_CONDITIONS: tuple[str, ...] = (
    "unseen_hiss", "unseen_fan", "unseen_hum", "unseen_reverb", "unseen_band", "unseen_room",
)
_SEED_TAG = 0x5EE_0B5E  # differs from degrade.py's 0x0E7A1 / 0x7BA1D and rooms.py's bank seeds
_MIN_RATE_HZ = 8000
_CROSSOVERS_HZ = (250.0, 1000.0, 4000.0)
_BAND_RT60_FACTORS = ((1.2, 1.45), (1.05, 1.2), (1.0, 1.1), (0.75, 0.9))  # broadband T20 lands within ~10 %
_LN_1000 = float(np.log(1000.0))  # amplitude falls 60 dB over one RT60


def _unit(x: F64) -> F64:
    return x / max(float(np.sqrt(np.mean(x**2))), 1e-12) if x.size else x


def _one_pole_lowpass(x: F64, corner_hz: float, sample_rate: int) -> F64:
    a = float(np.exp(-2 * np.pi * corner_hz / sample_rate))
    return np.asarray(signal.lfilter([1.0 - a], [1.0, -a], x), dtype=np.float64)


def _mix(parts: list[F64], shares: list[float]) -> F64:
    """Unit-RMS power blend: each share is that part's fraction of the energy."""
    out = np.zeros(len(parts[0]))
    for part, share in zip(parts, shares, strict=True):
        out += np.sqrt(share) * _unit(part)
    return _unit(out)


def _hiss(n: int, sample_rate: int, rng: np.random.Generator) -> F64:
    # A first difference rises +6 dB/octave: preamp and ADC hiss leans bright, unlike room noise.
    blue = np.diff(rng.standard_normal(n + 1))
    share = float(rng.uniform(0.4, 0.8))
    return _mix([rng.standard_normal(n), blue], [1.0 - share, share])


def _fan(n: int, sample_rate: int, rng: np.random.Generator) -> F64:
    white = rng.standard_normal(n)
    body = np.zeros(n)
    for _ in range(int(rng.integers(1, 3))):
        b, a = signal.iirpeak(rng.uniform(200.0, 800.0), rng.uniform(0.7, 2.5), fs=sample_rate)
        body += rng.uniform(0.5, 1.0) * signal.lfilter(b, a, white)
    floor = _one_pole_lowpass(rng.standard_normal(n), rng.uniform(1000.0, 3000.0), sample_rate)
    broadband = _mix([body, floor], [0.7, 0.3])
    t = np.arange(n) / sample_rate
    blade_hz = float(rng.uniform(40.0, 120.0))
    tones = np.zeros(n)
    for k in range(1, int(rng.integers(3, 7)) + 1):
        if k * blade_hz < 0.45 * sample_rate:
            tones += rng.uniform(0.3, 1.0) / k * np.sin(2 * np.pi * k * blade_hz * t + rng.uniform(0, 2 * np.pi))
    share = float(rng.uniform(0.15, 0.4))
    # The blades' speed and the airflow wobble slowly: the whole fan sound swells by 10-30 %.
    wobble = 1.0 + rng.uniform(0.1, 0.3) * np.sin(2 * np.pi * rng.uniform(0.5, 3.0) * t + rng.uniform(0, 2 * np.pi))
    return _unit(_mix([broadband, tones], [1.0 - share, share]) * wobble)


def _hum(n: int, sample_rate: int, rng: np.random.Generator) -> F64:
    # Magnetostriction buzzes at twice the mains frequency; clipping a biased sine gives its many
    # odd and even harmonics (the training chain's hum is a sum of sines on 50/60 Hz).
    f0 = float(rng.choice([100.0, 120.0]))
    t = np.arange(n) / sample_rate
    drive = float(rng.uniform(2.0, 6.0))
    buzz = np.clip(drive * np.sin(2 * np.pi * f0 * t + rng.uniform(0, 2 * np.pi)) + rng.uniform(0.2, 0.8), -1.0, 1.0)
    rumble = _one_pole_lowpass(rng.standard_normal(n), rng.uniform(30.0, 120.0), sample_rate)
    share = float(rng.uniform(0.05, 0.2))
    return _mix([buzz - np.mean(buzz), rumble], [1.0 - share, share])


def _crossover_weights(freqs: F64) -> F64:
    """Amplitude weights of 4 bands, raised-cosine over one octave per crossover; they sum to 1 everywhere."""
    log_f = np.log2(np.maximum(freqs, 1.0))
    rest = np.ones_like(freqs)
    weights = []
    for fc in _CROSSOVERS_HZ:
        below = np.cos(0.5 * np.pi * np.clip(log_f - np.log2(fc) + 0.5, 0.0, 1.0)) ** 2
        weights.append(rest * below)
        rest = rest * (1.0 - below)
    weights.append(rest)
    return np.array(weights)


def synthetic_rir(sample_rate: int, rng: np.random.Generator, rt60_s: float) -> FloatArray:
    """An algorithmic (not image-source) room response with broadband RT60 ``rt60_s`` seconds.

    ``rir[0] == 1`` is the direct path, so convolving keeps the dry level; the tail reaches -66 dB in its
    slowest band. Low bands ring longer than high ones, as air and soft furnishings absorb treble.
    """
    band_rt60 = rt60_s * np.array([rng.uniform(lo, hi) for lo, hi in _BAND_RT60_FACTORS])
    n = int(1.1 * float(band_rt60.max()) * sample_rate) + 1
    m = next_fast_len(n, real=True)
    spectrum = rfft(rng.standard_normal(m))
    t = np.arange(n) / sample_rate
    tail = np.zeros(n)
    for weight, rt60 in zip(_crossover_weights(rfftfreq(m, 1.0 / sample_rate)), band_rt60, strict=True):
        tail += irfft(spectrum * weight, m)[:n] * np.exp(-_LN_1000 * t / rt60)
    # The diffuse field builds up over the first 10-30 ms, after the direct sound.
    tail *= np.clip((t - rng.uniform(0.003, 0.008)) / rng.uniform(0.01, 0.02), 0.0, 1.0)
    drr_db = float(rng.uniform(-4.0, 2.0))
    tail *= np.sqrt(10 ** (-drr_db / 10) / max(float(np.sum(tail**2)), 1e-30))
    tail[0] = 1.0
    for _ in range(int(rng.integers(3, 7))):
        tail[int(rng.uniform(0.005, 0.03) * sample_rate)] += rng.choice([-1.0, 1.0]) * rng.uniform(0.2, 0.6)
    return tail.astype(np.float32)


def _reverb(x: F64, sample_rate: int, rng: np.random.Generator, rt60_range: tuple[float, float]) -> F64:
    rir = synthetic_rir(sample_rate, rng, float(rng.uniform(*rt60_range)))
    return np.asarray(signal.oaconvolve(x, rir.astype(np.float64))[: len(x)], dtype=np.float64)


def _speaker(x: F64, sample_rate: int, rng: np.random.Generator) -> F64:
    highpass = signal.cheby1(4, 1.0, rng.uniform(180.0, 300.0), "highpass", fs=sample_rate, output="sos")
    lowpass_hz = min(float(rng.uniform(3800.0, 6000.0)), 0.45 * sample_rate)
    lowpass = signal.ellip(6, 0.5, 50.0, lowpass_hz, "lowpass", fs=sample_rate, output="sos")
    y = signal.sosfilt(highpass, x)
    drive, bias = float(rng.uniform(1.0, 2.5)), float(rng.uniform(0.0, 0.15))
    # A biased tanh: the cone stiffens asymmetrically, adding even harmonics; scaled to unit small-signal gain.
    y = (np.tanh(drive * (y + bias)) - np.tanh(drive * bias)) / (drive * (1.0 - np.tanh(drive * bias) ** 2))
    return np.asarray(signal.sosfilt(lowpass, y), dtype=np.float64)


def _noisy(source: Callable[[int, int, np.random.Generator], F64], snr_db: tuple[float, float]
           ) -> Callable[[F64, int, np.random.Generator], F64]:
    def apply(x: F64, sample_rate: int, rng: np.random.Generator) -> F64:
        snr = float(rng.uniform(*snr_db))
        return add_noise_at_snr(x, source(len(x), sample_rate, rng), snr).astype(np.float64)
    return apply


def _room(x: F64, sample_rate: int, rng: np.random.Generator) -> F64:
    y = _reverb(x, sample_rate, rng, (0.5, 0.8))
    source = _fan if rng.random() < 0.5 else _hum
    y = _noisy(source, (8.0, 14.0))(y, sample_rate, rng)
    y = _speaker(y, sample_rate, rng)
    return y * 10 ** (rng.uniform(-12.0, 3.0) / 20)


_CONDITIONS: dict[str, Callable[[F64, int, np.random.Generator], F64]] = {
    "unseen_hiss": _noisy(_hiss, (15.0, 25.0)),
    "unseen_fan": _noisy(_fan, (8.0, 18.0)),
    "unseen_hum": _noisy(_hum, (10.0, 20.0)),
    "unseen_reverb": lambda x, sr, rng: _reverb(x, sr, rng, (0.4, 0.9)),
    "unseen_band": _speaker,
    "unseen_room": _room,
}


def _soft_limit(x: F64) -> F64:
    """Identity unless the peak passes full scale; then the algebraic curve x / (1 + x^4)^(1/4) (|y| < 1)."""
    if x.size == 0 or float(np.max(np.abs(x))) <= 1.0:
        return x
    return x / (1.0 + x**4) ** 0.25


def unseen(audio: AudioIn, sample_rate: int, condition: str, seed: int) -> FloatArray:
    """Degrade mono ``audio`` (``sample_rate`` Hz, >= 8000) by an evaluation-only ``condition``.

    Deterministic in (audio, condition, seed). Returns float32 of the same length, within [-1, 1];
    NaNs count as silence. ValueError names the valid conditions for an unknown one.
    """
    if condition not in _CONDITIONS:
        raise ValueError(f"unknown condition {condition!r}; valid conditions: {', '.join(UNSEEN_CONDITIONS)}")
    if sample_rate < _MIN_RATE_HZ:
        raise ValueError(f"sample_rate {sample_rate} Hz is below the {_MIN_RATE_HZ} Hz these conditions assume")
    x = mono64(audio)
    if x.size == 0:
        return x.astype(np.float32)
    rng = np.random.default_rng([_SEED_TAG, UNSEEN_CONDITIONS.index(condition), seed % 2**64])
    y = _soft_limit(np.nan_to_num(_CONDITIONS[condition](x, sample_rate, rng)))
    return np.clip(y, -1.0, 1.0).astype(np.float32)
