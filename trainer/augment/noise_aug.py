"""Training-side wide noise augmentation: many noise colours at SNRs from 0 to 30 dB.

Why: a head trained on copies from :mod:`trainer.augment.degrade` learnt that room chain (its pink/brown
blend, its 50/60 Hz hum, its babble, its three SNRs) rather than rooms, and noise at ordinary living-room
levels built any other way broke it. Drawing the noise colour, a smooth EQ and the SNR from wide
continuous ranges teaches the head that noise is not genre, instead of teaching it one noise.

:func:`noise_copy` draws (uniformly unless stated):

* power spectrum ∝ f^alpha, alpha in [-2, 0] (white to brown), flat below 20 Hz, shaped in one FFT;
* a smooth EQ of 1-3 Gaussian bumps in log-frequency: centre 40 Hz-0.8 Nyquist (log-uniform),
  width sigma 0.5-2 octaves, gain -6..+6 dB;
* SNR 0-30 dB against the clip's RMS (-60 dBFS for silence);
* with probability 0.3 a gentle band limit: 2nd-order Butterworth high-pass 60-250 Hz, low-pass
  3.5-8 kHz (clamped to 0.45 of the rate), or both, each a third of the time;
* with probability 0.5 a level change of -20..+6 dB, tanh soft clip above 0.8.

How it differs from the evaluation-only :mod:`trainer.augment.unseen` family: that family generates
its noise in the time domain (first-difference hiss tilted *up*, which alpha <= 0 never is; resonator
fans with blade-pass tones and slow modulation; clipped-sine 100/120 Hz hum combs) and adds synthetic
reverberation and Chebyshev/elliptic band limits with speaker saturation. This module has no tones, no
combs, no modulation, no reverberation; it shares only the idea "broadband noise at an SNR" (and its EQ
bumps can overlap the fans' 200-800 Hz resonances), so the unseen family stays a fair test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import signal
from scipy.fft import irfft, next_fast_len, rfftfreq

from trainer.augment.degrade import add_noise_at_snr, change_level, mono64, soft_clip

__all__ = ["NoiseCopyParams", "draw_noise_params", "noise_copy", "wide_noise"]

FloatArray = npt.NDArray[np.float32]
AudioIn = npt.NDArray[np.floating[Any]]
Bump = tuple[float, float, float]  # centre (Hz), width sigma (octaves), gain (dB)

_FLOOR_HZ = 20.0
_P_BAND = 0.3
_P_LEVEL = 0.5


@dataclass(frozen=True)
class NoiseCopyParams:
    """One draw of :func:`noise_copy`; ``None`` marks a stage that is skipped."""

    alpha: float
    bumps: tuple[Bump, ...]
    snr_db: float
    highpass_hz: float | None
    lowpass_hz: float | None
    level_db: float | None


def draw_noise_params(sample_rate: int, rng: np.random.Generator) -> NoiseCopyParams:
    """The parameters :func:`noise_copy` draws first from ``rng`` (same order, same values)."""
    alpha = float(rng.uniform(-2.0, 0.0))
    lo, hi = np.log2(40.0), np.log2(0.4 * sample_rate)
    bumps = tuple((float(2 ** rng.uniform(lo, hi)), float(rng.uniform(0.5, 2.0)), float(rng.uniform(-6.0, 6.0)))
                  for _ in range(int(rng.integers(1, 4))))
    snr_db = float(rng.uniform(0.0, 30.0))
    highpass_hz = lowpass_hz = None
    if rng.random() < _P_BAND:
        which = int(rng.integers(3))  # 0: high-pass, 1: low-pass, 2: both
        if which != 1:
            highpass_hz = float(rng.uniform(60.0, 250.0))
        if which != 0:
            lowpass_hz = min(float(rng.uniform(3500.0, 8000.0)), 0.45 * sample_rate)
    level_db = float(rng.uniform(-20.0, 6.0)) if rng.random() < _P_LEVEL else None
    return NoiseCopyParams(alpha, bumps, snr_db, highpass_hz, lowpass_hz, level_db)


def wide_noise(n: int, sample_rate: int, rng: np.random.Generator, alpha: float,
               bumps: tuple[Bump, ...] = ()) -> FloatArray:
    """Unit-RMS Gaussian noise, ``n`` samples, power ∝ f^``alpha`` above 20 Hz (flat below) times ``bumps``."""
    if n == 0:
        return np.zeros(0, dtype=np.float32)
    # Clip lengths are often near-prime and pocketfft is then ~20x slower: pad to a fast length and trim.
    m = next_fast_len(n, real=True)
    freqs = rfftfreq(m, 1.0 / sample_rate)
    # Sub-audio drift would otherwise dominate the brown end and swamp the SNR with inaudible energy.
    octaves = np.log2(np.maximum(freqs, _FLOOR_HZ))
    gain_db = np.zeros_like(freqs)
    for centre_hz, width_oct, bump_db in bumps:
        gain_db += bump_db * np.exp(-0.5 * ((octaves - np.log2(centre_hz)) / width_oct) ** 2)
    amplitude = (2.0**octaves / _FLOOR_HZ) ** (alpha / 2) * 10 ** (gain_db / 20)
    spectrum = (rng.standard_normal(len(freqs)) + 1j * rng.standard_normal(len(freqs))) * amplitude
    spectrum[0] = 0.0
    noise = irfft(spectrum, m)[:n]
    out: FloatArray = (noise / max(float(np.sqrt(np.mean(noise**2))), 1e-12)).astype(np.float32)
    return out


def noise_copy(audio: AudioIn, sample_rate: int, rng: np.random.Generator) -> FloatArray:
    """A training copy of mono ``audio`` with wide-coloured noise at 0-30 dB SNR (see the module docstring).

    Deterministic given ``rng``'s state; float32 of the same length, within [-1, 1]; NaNs count as silence.
    """
    params = draw_noise_params(sample_rate, rng)
    x = mono64(audio)
    if x.size == 0:
        return x.astype(np.float32)
    y = add_noise_at_snr(x, wide_noise(len(x), sample_rate, rng, params.alpha, params.bumps), params.snr_db)
    # Band-limit after the noise: a mic and its front end filter the noise too.
    sections = []
    if params.highpass_hz is not None:
        sections.append(signal.butter(2, params.highpass_hz, "highpass", fs=sample_rate, output="sos"))
    if params.lowpass_hz is not None:
        sections.append(signal.butter(2, params.lowpass_hz, "lowpass", fs=sample_rate, output="sos"))
    if sections:
        y = np.asarray(signal.sosfilt(np.vstack(sections), y), dtype=np.float32)
    if params.level_db is not None:
        y = change_level(y, params.level_db)
    return np.clip(np.nan_to_num(soft_clip(y)), -1.0, 1.0).astype(np.float32)
