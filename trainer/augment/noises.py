"""Living-room noise for the degradation chain: pink/brown noise, mains hum and espeak-ng babble.

Babble is real synthetic speech: each voice reads its sentences once through ``espeak-ng`` (22050 Hz
wav), cached in-process and, when a cache dir is given, on disk. "eval" and "train" use disjoint voices
and disjoint sentences, so training never sees the evaluation's talkers.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import shutil
import subprocess
import tempfile
import threading

import numpy as np
import numpy.typing as npt
import soundfile as sf
import soxr
from scipy.fft import irfft, next_fast_len

FloatArray = npt.NDArray[np.float32]

ESPEAK_RATE_HZ = 22050
# (voice, words per minute, pitch 0-99); variants +mN/+fN give distinct male/female timbres.
VOICES: dict[str, tuple[tuple[str, int, int], ...]] = {
    "eval": (("en-us+m3", 165, 45), ("en-gb+f2", 175, 60), ("en+m5", 150, 35), ("en-gb-scotland+f4", 160, 55)),
    "train": (("en-us+f1", 170, 58), ("en-gb+m2", 160, 40), ("en+f3", 180, 65), ("en-gb-x-rp+m4", 155, 30),
              ("en-029+f5", 165, 50), ("en-us+m6", 175, 42)),
}
TEXTS: dict[str, tuple[str, ...]] = {
    "eval": (
        "Did you remember to buy milk on the way home, or should I go out again later tonight?",
        "The meeting moved to Thursday afternoon, so we can finally visit your parents this weekend.",
        "I think the kettle is broken again, it keeps switching itself off before the water boils.",
        "Honestly the ending of that film made no sense at all, but the music was wonderful.",
    ),
    "train": (
        "Could you pass me the remote control, the one with the sticky volume button on the side?",
        "We should paint the hallway a lighter colour before the winter makes everything so dark.",
        "My sister says the new bakery near the station sells the best cinnamon rolls in town.",
        "The dog barked at the postman for ten minutes and then fell asleep right on the doormat.",
        "If the train is late again tomorrow I will just cycle, even if it rains the whole way.",
        "Put the leftovers in the fridge, we can have them for lunch with some fresh bread.",
    ),
}

_babble_lock = threading.Lock()
_babble: dict[tuple[str, int], tuple[FloatArray, ...]] = {}


def colored_noise(n: int, sample_rate: int, rng: np.random.Generator, pink: float, brown: float) -> FloatArray:
    """Unit-RMS mix of pink (1/f power) and brown (1/f² power) noise, ``n`` samples long.

    Shaped in the frequency domain in one FFT; ``pink``/``brown`` are the components' relative amplitudes
    at 20 Hz, below which both are flat (sub-audio drift would otherwise swamp the mix).
    """
    # Clip lengths are often near-prime (661794 = 2*3*110299) and pocketfft then takes ~20x longer.
    m = next_fast_len(n, real=True)
    spectrum = rng.standard_normal(m // 2 + 1) + 1j * rng.standard_normal(m // 2 + 1)
    f = np.maximum(np.fft.rfftfreq(m, 1.0 / sample_rate), 20.0) / 20.0
    spectrum *= pink / np.sqrt(f) + brown / f
    spectrum[0] = 0.0
    noise = irfft(spectrum, m)[:n]
    out: FloatArray = (noise / max(float(np.sqrt(np.mean(noise**2))), 1e-12)).astype(np.float32)
    return out


def mains_hum(n: int, sample_rate: int, rng: np.random.Generator) -> FloatArray:
    """Unit-RMS mains hum: 50 or 60 Hz plus decaying odd/even harmonics (amp buzz, fridge compressor)."""
    fundamental = float(rng.choice([50.0, 60.0]))
    # Every harmonic of an integer-Hz fundamental repeats each second, so synthesise one second and tile.
    t = np.arange(sample_rate, dtype=np.float64) / sample_rate
    period = np.zeros(sample_rate)
    for k in range(1, 8):
        if k * fundamental < sample_rate / 2:
            phase = rng.uniform(0, 2 * np.pi)
            period += rng.uniform(0.2, 1.0) / k * np.sin(2 * np.pi * k * fundamental * t + phase)
    hum = np.resize(period, n)
    return (hum / float(np.sqrt(np.mean(hum**2)))).astype(np.float32)


def render_espeak(voice: str, wpm: int, pitch: int, text: str, out: pathlib.Path) -> None:
    """Speak ``text`` with espeak-ng into the wav file ``out`` (22050 Hz mono)."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError("espeak-ng is not installed; babble noise needs it (apt-get install espeak-ng)")
    subprocess.run([exe, "-v", voice, "-s", str(wpm), "-p", str(pitch), "-w", str(out), text],
                   check=True, capture_output=True, timeout=60)


def babble_bank(purpose: str, sample_rate: int, cache_dir: pathlib.Path | None = None) -> tuple[FloatArray, ...]:
    """One unit-RMS float32 recording per voice of ``purpose`` reading all its sentences, at ``sample_rate`` Hz."""
    if purpose not in VOICES:
        raise ValueError(f"unknown purpose {purpose!r}; valid purposes: {', '.join(VOICES)}")
    key = (purpose, sample_rate)
    with _babble_lock:
        if key in _babble:
            return _babble[key]
        bank: list[FloatArray] = []
        with tempfile.TemporaryDirectory() as tmp:
            for i, (voice, wpm, pitch) in enumerate(VOICES[purpose]):
                # Rotate the sentence order per voice so overlapping talkers never say the same thing at once.
                texts = TEXTS[purpose][i % len(TEXTS[purpose]):] + TEXTS[purpose][: i % len(TEXTS[purpose])]
                # The text hash in the name invalidates a stale disk cache when the sentences are edited.
                text_tag = hashlib.sha256(" ".join(texts).encode()).hexdigest()[:8]
                name = f"babble-{purpose}-{i}-{voice.replace('+', '_')}-{wpm}-{pitch}-{text_tag}.wav"
                path = cache_dir / name if cache_dir is not None else pathlib.Path(tmp) / name
                if not path.exists():
                    path.parent.mkdir(parents=True, exist_ok=True)
                    part = path.with_suffix(f".{os.getpid()}.part.wav")
                    render_espeak(voice, wpm, pitch, " ".join(texts), part)
                    os.replace(part, path)
                speech, rate = sf.read(path, dtype="float64")
                if rate != sample_rate:
                    speech = soxr.resample(speech, rate, sample_rate)
                bank.append((speech / max(float(np.sqrt(np.mean(speech**2))), 1e-12)).astype(np.float32))
        _babble[key] = tuple(bank)
        return _babble[key]


def babble(n: int, sample_rate: int, rng: np.random.Generator, talkers: int, purpose: str,
           cache_dir: pathlib.Path | None = None) -> FloatArray:
    """Unit-RMS babble of ``talkers`` distinct voices, each from a random offset, looped to ``n`` samples."""
    bank = babble_bank(purpose, sample_rate, cache_dir)
    mix = np.zeros(n)
    for idx in rng.choice(len(bank), size=min(talkers, len(bank)), replace=False):
        speech = bank[int(idx)]
        offset = int(rng.integers(len(speech)))
        mix += 10 ** (rng.uniform(-4.0, 4.0) / 20) * np.take(speech, np.arange(offset, offset + n), mode="wrap")
    out: FloatArray = (mix / max(float(np.sqrt(np.mean(mix**2))), 1e-12)).astype(np.float32)
    return out


def room_noise(n: int, sample_rate: int, rng: np.random.Generator, talkers: int, purpose: str,
               cache_dir: pathlib.Path | None = None) -> FloatArray:
    """Unit-RMS living-room noise: a random blend of pink+brown noise, mains hum and babble."""
    w_colored, w_hum, w_babble = rng.dirichlet([2.0, 1.0, 3.0])
    pink, brown = rng.uniform(0.2, 1.0, size=2)
    # Blend in power so each weight is that component's share of the noise energy.
    mix = (np.sqrt(w_colored) * colored_noise(n, sample_rate, rng, pink, brown)
           + np.sqrt(w_hum) * mains_hum(n, sample_rate, rng)
           + np.sqrt(w_babble) * babble(n, sample_rate, rng, talkers, purpose, cache_dir))
    out: FloatArray = (mix / max(float(np.sqrt(np.mean(mix**2))), 1e-12)).astype(np.float32)
    return out
