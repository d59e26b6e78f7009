"""Reproducible "real room" degradation chain: what the Pi's mic hears instead of a clean GTZAN clip.

The product listens to a speaker across a living room through a cheap USB mic with automatic gain,
over fridge hum and people talking. :func:`degrade` replays that at a named severity from a seed
(evaluation); :func:`augment` draws the same families of effects for training, from disjoint RIR banks,
noise seeds and babble voices/sentences, so a model is never trained on the evaluation's exact rooms.

Chain, in signal order (ranges are drawn uniformly per clip from the seed)::

    room RIR -> room noise at SNR -> speaker/mic band-limit -> mic EQ -> level (+ADC soft clip)
    -> AGC pumping (+limiter soft clip) -> 44.1/48 kHz round trip -> hard clip to [-1, 1]

=====================================  ============  ============  ============
parameter                              mild          typical       harsh
=====================================  ============  ============  ============
RT60 (s), pyroomacoustics ISM shoebox  0.20-0.40     0.35-0.60     0.55-0.80
speaker-to-mic distance (m)            1.0-2.0       2.0-3.5       3.0-4.5
high-pass, Butterworth 4th (Hz)        80-110        100-160       150-250
low-pass, Butterworth 8th (Hz)         7000-8000     5500-7000     4000-5500
mic low-shelf at 250 Hz (dB)           -2-0          -5--2         -9--5
mic presence peak 2-4.5 kHz (dB)       0-+3          +2-+5         +4-+8
SNR of room noise (dB)                 20            10            5
babble talkers (espeak-ng voices)      2-3           3-4           4-6
level change (dB)                      -6-+3         -18-+6        -30-+6
AGC max boost (dB), target -20 dBFS    6             15            25
AGC attack / release (s)               0.05-0.1 /    0.02-0.05 /   0.005-0.02 /
                                       1.0-2.0       0.4-1.0       0.15-0.4
capture rate of the round trip (Hz)    48000         44100, 48000  44100
=====================================  ============  ============  ============

Room noise is a random power blend of pink+brown noise, 50/60 Hz mains hum and babble. For
``purpose="train"`` the SNR is jittered by ±3 dB around the table value. Banks: 4 RIRs per severity for
eval (12 in all), 8 for train (24); see :mod:`trainer.augment.rooms` and :mod:`trainer.augment.noises`.

Note: the mic-EQ stage uses audiomentations filters with fixed parameters; they draw (and so advance)
Python's and NumPy's *global* random state, though the output never depends on it.
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass
from typing import Any

import audiomentations as am
import numpy as np
import numpy.typing as npt
import soxr
from scipy import signal

from trainer.augment import noises, rooms
from trainer.augment.rooms import estimate_rt60

__all__ = [
    "SEVERITIES", "DegradeConfig", "add_noise_at_snr", "agc", "augment", "band_limit", "change_level",
    "degrade", "estimate_rt60", "measure_snr_db", "mic_eq", "mono64", "resample_round_trip", "reverberate",
    "rir_bank_for", "severity_config", "soft_clip",
]

FloatArray = npt.NDArray[np.float32]
AudioIn = npt.NDArray[np.floating[Any]]  # float32 or float64 mono samples
Range = tuple[float, float]

SEVERITIES: tuple[str, ...] = ("mild", "typical", "harsh")
_PURPOSE_TAG: dict[str, int] = {"eval": 0x0E7A1, "train": 0x7BA1D}
_TRAIN_SNR_JITTER_DB = 3.0
_AGC_TARGET_DBFS = -20.0
_AGC_FRAME_S = 0.01
_SOFT_CLIP_KNEE = 0.8
_SILENCE_RMS = 1e-3  # -60 dBFS: noise level reference for (near-)silent clips


@dataclass(frozen=True)
class DegradeConfig:
    """Per-severity parameter ranges; ``(lo, hi)`` pairs are drawn uniformly per clip."""

    name: str
    rt60_s: Range
    source_distance_m: Range
    highpass_hz: Range
    lowpass_hz: Range
    mic_low_shelf_db: Range
    mic_presence_db: Range
    snr_db: float
    babble_talkers: tuple[int, int]
    level_db: Range
    agc_max_gain_db: float
    agc_attack_s: Range
    agc_release_s: Range
    capture_rates_hz: tuple[int, ...]


_CONFIGS: dict[str, DegradeConfig] = {
    "mild": DegradeConfig("mild", (0.20, 0.40), (1.0, 2.0), (80.0, 110.0), (7000.0, 8000.0), (-2.0, 0.0),
                          (0.0, 3.0), 20.0, (2, 3), (-6.0, 3.0), 6.0, (0.05, 0.1), (1.0, 2.0), (48000,)),
    "typical": DegradeConfig("typical", (0.35, 0.60), (2.0, 3.5), (100.0, 160.0), (5500.0, 7000.0),
                             (-5.0, -2.0), (2.0, 5.0), 10.0, (3, 4), (-18.0, 6.0), 15.0, (0.02, 0.05),
                             (0.4, 1.0), (44100, 48000)),
    "harsh": DegradeConfig("harsh", (0.55, 0.80), (3.0, 4.5), (150.0, 250.0), (4000.0, 5500.0), (-9.0, -5.0),
                           (4.0, 8.0), 5.0, (4, 6), (-30.0, 6.0), 25.0, (0.005, 0.02), (0.15, 0.4), (44100,)),
}


def severity_config(severity: str) -> DegradeConfig:
    """The parameter ranges of a named severity; ValueError naming the valid ones otherwise."""
    try:
        return _CONFIGS[severity]
    except KeyError:
        raise ValueError(f"unknown severity {severity!r}; valid severities: {', '.join(SEVERITIES)}") from None


def _rms(x: AudioIn) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


def measure_snr_db(clean: AudioIn, degraded: AudioIn) -> float:
    """SNR in dB of ``degraded`` against ``clean``, taking ``degraded - clean`` as the noise."""
    clean64 = np.asarray(clean, dtype=np.float64)
    noise_power = float(np.mean((np.asarray(degraded, dtype=np.float64) - clean64) ** 2))
    return float(10 * np.log10(float(np.mean(clean64**2)) / max(noise_power, 1e-30)))


def band_limit(audio: AudioIn, sample_rate: int, highpass_hz: float, lowpass_hz: float) -> FloatArray:
    """Band-pass ``highpass_hz``..``lowpass_hz`` (Hz): a small speaker's lost bass and a cheap mic's top."""
    lowpass_hz = min(lowpass_hz, 0.45 * sample_rate)
    sos = np.vstack([signal.butter(4, highpass_hz, "highpass", fs=sample_rate, output="sos"),
                     signal.butter(8, lowpass_hz, "lowpass", fs=sample_rate, output="sos")])
    return np.asarray(signal.sosfilt(sos, audio), dtype=np.float32)


def mic_eq(audio: AudioIn, sample_rate: int, low_shelf_db: float, presence_db: float,
           presence_hz: float) -> FloatArray:
    """Cheap electret-mic tilt: a low-shelf at 250 Hz and a presence peak at ``presence_hz`` (dB gains)."""
    chain = am.Compose([
        am.LowShelfFilter(min_center_freq=250.0, max_center_freq=250.0, min_gain_db=low_shelf_db,
                          max_gain_db=low_shelf_db, min_q=0.707, max_q=0.707, p=1.0),
        am.PeakingFilter(min_center_freq=presence_hz, max_center_freq=presence_hz, min_gain_db=presence_db,
                         max_gain_db=presence_db, min_q=1.0, max_q=1.0, p=1.0),
    ])
    return np.asarray(chain(samples=np.asarray(audio, dtype=np.float32), sample_rate=sample_rate),
                      dtype=np.float32)


def mono64(audio: AudioIn) -> npt.NDArray[np.float64]:
    """A copy's input as flat float64: NaN as silence, infinities as full scale (a decoder glitch must not poison
    the whole copy through a convolution or an RMS)."""
    return np.nan_to_num(np.asarray(audio, dtype=np.float64).reshape(-1), nan=0.0, posinf=1.0, neginf=-1.0)


def reverberate(audio: AudioIn, rir: AudioIn) -> FloatArray:
    """Convolve with a direct-path-aligned RIR (see :mod:`trainer.augment.rooms`), trimmed to the input length."""
    return np.asarray(signal.fftconvolve(audio, rir)[: len(audio)], dtype=np.float32)


def add_noise_at_snr(audio: AudioIn, noise: AudioIn, snr_db: float) -> FloatArray:
    """``audio`` plus unit-RMS ``noise`` scaled to ``snr_db`` dB below the audio's RMS (-60 dBFS if silent)."""
    gain = max(_rms(audio), _SILENCE_RMS) / max(_rms(noise), 1e-12) * 10 ** (-snr_db / 20)
    out: FloatArray = (np.asarray(audio, dtype=np.float64) + gain * noise).astype(np.float32)
    return out


def soft_clip(audio: AudioIn) -> FloatArray:
    """Identity unless the peak exceeds full scale; then a tanh knee above 0.8 keeps |x| < 1."""
    x = np.asarray(audio, dtype=np.float64)
    if x.size == 0 or float(np.max(np.abs(x))) <= 1.0:
        return x.astype(np.float32)
    mag = np.abs(x)
    over = mag > _SOFT_CLIP_KNEE
    head = 1.0 - _SOFT_CLIP_KNEE
    mag[over] = _SOFT_CLIP_KNEE + head * np.tanh((mag[over] - _SOFT_CLIP_KNEE) / head)
    out: FloatArray = (np.sign(x) * mag).astype(np.float32)
    return out


def change_level(audio: AudioIn, gain_db: float) -> FloatArray:
    """Scale by ``gain_db`` dB, soft-clipping (like an overdriven ADC) if that passes full scale."""
    return soft_clip(np.asarray(audio, dtype=np.float64) * 10 ** (gain_db / 20))


def agc(audio: AudioIn, sample_rate: int, attack_s: float, release_s: float, max_gain_db: float,
        target_dbfs: float = _AGC_TARGET_DBFS) -> FloatArray:
    """USB-mic automatic gain: a 10 ms RMS envelope follower (attack/release time constants in seconds)
    steering the gain toward ``target_dbfs``, boosting by at most ``max_gain_db`` dB. Loud onsets duck the
    gain within ``attack_s`` and it recovers over ``release_s``: the audible "pumping". Not in any library.
    """
    x = np.asarray(audio, dtype=np.float64)
    hop = max(1, round(_AGC_FRAME_S * sample_rate))
    n_frames = -(-len(x) // hop)
    if n_frames == 0:
        return x.astype(np.float32)
    padded = np.zeros(n_frames * hop)
    padded[: len(x)] = x
    level_db = 10 * np.log10(np.mean(padded.reshape(n_frames, hop) ** 2, axis=1) + 1e-10)
    up = 1.0 - np.exp(-_AGC_FRAME_S / attack_s)
    down = 1.0 - np.exp(-_AGC_FRAME_S / release_s)
    env = np.empty(n_frames)
    e = float(level_db[0])
    for i, lvl in enumerate(level_db.tolist()):  # asymmetric one-pole: no vectorised scipy equivalent
        e += (up if lvl > e else down) * (lvl - e)
        env[i] = e
    gain_db = np.clip(target_dbfs - env, -40.0, max_gain_db)
    centres = (np.arange(n_frames) + 0.5) * hop
    gain = 10 ** (np.interp(np.arange(len(x)), centres, gain_db) / 20)
    return soft_clip(x * gain)


def resample_round_trip(audio: AudioIn, sample_rate: int, capture_rate: int) -> FloatArray:
    """Up to the mic's ``capture_rate`` (Hz) and back down with soxr, as the daemon receives and resamples."""
    if capture_rate == sample_rate:
        return np.asarray(audio, dtype=np.float32)
    up = soxr.resample(np.asarray(audio, dtype=np.float32), sample_rate, capture_rate)
    down = np.asarray(soxr.resample(up, capture_rate, sample_rate), dtype=np.float32)
    out = np.zeros(len(audio), dtype=np.float32)  # the rate ratio can round the length by a sample
    out[: min(len(down), len(audio))] = down[: len(audio)]
    return out


def rir_bank_for(severity: str, purpose: str, sample_rate: int,
                 cache_dir: pathlib.Path | None = None) -> tuple[FloatArray, ...]:
    """The cached RIR bank a severity and purpose draw from (built on first use, ~0.5-2 s per bank)."""
    cfg = severity_config(severity)
    rir_dir = cache_dir / "rirs" if cache_dir is not None else None
    return rooms.rir_bank(purpose, severity, cfg.rt60_s, cfg.source_distance_m, sample_rate, rir_dir)


def _uniform(rng: np.random.Generator, r: Range) -> float:
    return float(rng.uniform(r[0], r[1]))


def degrade(audio: AudioIn, sample_rate: int, severity: str, seed: int, *, purpose: str = "eval",
            cache_dir: pathlib.Path | None = None) -> AudioIn:
    """Degrade float32 mono ``audio`` (in [-1, 1], ``sample_rate`` Hz) as a living room at ``severity``.

    Deterministic in (audio, severity, seed, purpose); "eval" and "train" never share RIRs, noise seeds or
    babble. Returns float32 mono of the same length and rate, within [-1, 1]. ``cache_dir`` keeps the
    RIR and babble banks on disk across processes.
    """
    cfg = severity_config(severity)
    if purpose not in _PURPOSE_TAG:
        raise ValueError(f"unknown purpose {purpose!r}; valid purposes: {', '.join(_PURPOSE_TAG)}")
    x = np.nan_to_num(np.asarray(audio, dtype=np.float32).reshape(-1))
    if x.size == 0:
        return x.copy()
    # Purpose and severity are part of the seed, so no two (purpose, severity) pairs share a noise stream.
    rng = np.random.default_rng([_PURPOSE_TAG[purpose], SEVERITIES.index(severity), seed % 2**64])
    babble_dir = cache_dir / "babble" if cache_dir is not None else None

    bank = rir_bank_for(severity, purpose, sample_rate, cache_dir)
    x = reverberate(x, bank[int(rng.integers(len(bank)))])
    jitter = _TRAIN_SNR_JITTER_DB if purpose == "train" else 0.0
    snr = cfg.snr_db + _uniform(rng, (-jitter, jitter))
    talkers = int(rng.integers(cfg.babble_talkers[0], cfg.babble_talkers[1] + 1))
    x = add_noise_at_snr(x, noises.room_noise(len(x), sample_rate, rng, talkers, purpose, babble_dir), snr)
    # Band-limit after the noise: the mic and its front end filter the room noise too.
    x = band_limit(x, sample_rate, _uniform(rng, cfg.highpass_hz), _uniform(rng, cfg.lowpass_hz))
    x = mic_eq(x, sample_rate, _uniform(rng, cfg.mic_low_shelf_db), _uniform(rng, cfg.mic_presence_db),
               _uniform(rng, (2000.0, 4500.0)))
    x = change_level(x, _uniform(rng, cfg.level_db))
    x = agc(x, sample_rate, _uniform(rng, cfg.agc_attack_s), _uniform(rng, cfg.agc_release_s), cfg.agc_max_gain_db)
    x = resample_round_trip(x, sample_rate, int(rng.choice(cfg.capture_rates_hz)))
    return np.clip(np.nan_to_num(x), -1.0, 1.0).astype(np.float32)


def augment(audio: AudioIn, sample_rate: int, rng: np.random.Generator, *,
            cache_dir: pathlib.Path | None = None) -> AudioIn:
    """Training augmentation: 25 % nearly clean (a -6..+3 dB level change only), else a "train" degrade
    at mild/typical/harsh with probability 0.35/0.40/0.25, seeded from ``rng``.
    """
    if rng.random() < 0.25:
        x = np.nan_to_num(np.asarray(audio, dtype=np.float32).reshape(-1))
        return np.clip(change_level(x, float(rng.uniform(-6.0, 3.0))), -1.0, 1.0).astype(np.float32)
    severity = str(rng.choice(SEVERITIES, p=[0.35, 0.40, 0.25]))
    return degrade(audio, sample_rate, severity, int(rng.integers(2**63)), purpose="train", cache_dir=cache_dir)
