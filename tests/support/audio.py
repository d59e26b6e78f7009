"""Synthesized test audio: tones, noise, espeak-ng speech, and a dominant-frequency probe.

All writers produce 16-bit PCM WAV (what ``paplay`` and the daemon's file
source read) and return the path they wrote.

Example::

    tone = write_tone_wav(tmp_path / "a440.wav", freq_hz=440.0, seconds=2.0)
    noise = write_noise_wav(tmp_path / "pink.wav", seconds=1.0, color="pink", level_dbfs=-20.0)
    speech = write_speech_wav(tmp_path / "hello.wav", "hello kitchen")
    hz = dominant_frequency(samples, rate=44100)
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import soundfile as sf

__all__ = [
    "dominant_frequency",
    "espeak_available",
    "rms_dbfs",
    "write_noise_wav",
    "write_speech_wav",
    "write_tone_wav",
    "write_wav",
]


def write_wav(path: Path, samples: npt.NDArray[Any], rate: int) -> Path:
    """Write float samples in [-1, 1] (shape ``(n,)`` or ``(n, channels)``) as 16-bit PCM."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(samples, -1.0, 1.0), rate, subtype="PCM_16")
    return path


def _fade(x: npt.NDArray[np.float64], rate: int, fade_s: float) -> npt.NDArray[np.float64]:
    # Short raised-cosine ramps: a hard start/stop is a click that smears the spectrum.
    n = min(int(fade_s * rate), len(x) // 2)
    if n > 0:
        ramp = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, n))
        x[:n] *= ramp
        x[-n:] *= ramp[::-1]
    return x


def write_tone_wav(
    path: Path,
    *,
    freq_hz: float = 1000.0,
    seconds: float = 1.0,
    rate: int = 44100,
    channels: int = 2,
    level_dbfs: float = -6.0,
    fade_s: float = 0.005,
) -> Path:
    """Sine tone of ``freq_hz`` Hz, ``seconds`` long, peak at ``level_dbfs`` dB full scale."""
    t = np.arange(round(seconds * rate)) / rate
    x = _fade(10 ** (level_dbfs / 20) * np.sin(2 * np.pi * freq_hz * t), rate, fade_s)
    return write_wav(path, np.repeat(x[:, None], channels, axis=1), rate)


def write_noise_wav(
    path: Path,
    *,
    seconds: float = 1.0,
    rate: int = 44100,
    channels: int = 2,
    level_dbfs: float = -20.0,
    color: Literal["white", "pink"] = "white",
    seed: int = 0,
) -> Path:
    """Gaussian noise with RMS at ``level_dbfs`` dBFS; ``seed`` makes it reproducible."""
    rng = np.random.default_rng(seed)
    n = round(seconds * rate)
    x = rng.standard_normal((n, channels))
    if color == "pink":
        # 1/f power via spectral shaping; good enough for "music-like" background.
        spec = np.fft.rfft(x, axis=0)
        f = np.fft.rfftfreq(n, 1 / rate)
        f[0] = f[1] if n > 1 else 1.0
        x = np.fft.irfft(spec / np.sqrt(f)[:, None], n=n, axis=0)
    rms = float(np.sqrt(np.mean(x**2))) or 1.0
    x = x / rms * 10 ** (level_dbfs / 20)
    return write_wav(path, x, rate)


def espeak_available() -> bool:
    """True when ``espeak-ng`` is on PATH."""
    return shutil.which("espeak-ng") is not None


def write_speech_wav(path: Path, text: str = "this is not music, this is speech", *, voice: str = "en") -> Path:
    """Speak ``text`` with espeak-ng into ``path`` (22050 Hz mono 16-bit, espeak's native format)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), text], check=True, capture_output=True, timeout=30)
    return path


def dominant_frequency(samples: npt.NDArray[Any], rate: int) -> float:
    """Frequency in Hz of the strongest spectral peak (channels averaged, DC ignored).

    Uses a Hann window and parabolic interpolation between FFT bins, so a 1 s
    excerpt resolves well below 1 Hz for a clean tone.
    """
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim == 2:
        x = x.mean(axis=1)
    x = x - x.mean()
    mag = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    mag[0] = 0.0
    k = int(np.argmax(mag))
    if 0 < k < len(mag) - 1:
        a, b, c = np.log(mag[k - 1 : k + 2] + 1e-12)
        denom = a - 2 * b + c
        k_frac = k + (0.5 * (a - c) / denom if denom != 0 else 0.0)
    else:
        k_frac = float(k)
    return float(k_frac * rate / len(x))


def rms_dbfs(samples: npt.NDArray[Any]) -> float:
    """RMS level in dBFS of int16 or float samples (-inf for silence)."""
    x = np.asarray(samples, dtype=np.float64)
    if np.issubdtype(np.asarray(samples).dtype, np.integer):
        x = x / 32768.0
    rms = float(np.sqrt(np.mean(x**2))) if x.size else 0.0
    return 20 * float(np.log10(rms)) if rms > 0 else float("-inf")
