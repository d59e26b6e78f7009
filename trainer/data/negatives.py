"""Synthetic non-music clips, the training material of the reject class ``not_music``.

A genre model trained only on music has no way to say "this is not music": measured on the first
shipped model, espeak-ng speech came out as hip-hop/blues and pink noise as metal, with confidence
around 0.5-0.6 — above any usable threshold. Real living rooms are full of speech (people, TV, radio
talk) and steady noise (fans, fridges, rain). So the default recipe learns an 11th class from clips
made here: speech in many voices and languages with natural pauses, speech over room noise,
multi-talker babble, coloured noise, hum, and quiet room tone.

"train" and "eval" use disjoint voices and disjoint sentences (and seeds), so the daemon-side test and
the report's false-genre rate are measured on talkers the model never heard. Clips are written as
GTZAN-layout files (``not_music/not_music.NNNNN.wav``) so the trainer treats them like any other genre.
"""

from __future__ import annotations

import os
import pathlib
import tempfile

import numpy as np
import numpy.typing as npt
import soundfile as sf

from edge.audio import load_audio
from edge.decide.states import REJECT_LABEL
from trainer.augment.noises import colored_noise, mains_hum, render_espeak
from trainer.data.code_tag import feature_code_tag
from trainer.data.dataset import Clip, file_sha256

FloatArray = npt.NDArray[np.float32]
NEGATIVE_LABEL = REJECT_LABEL  # the reject class is a "genre" folder of the training data
CLIP_SECONDS = 30.0
KINDS = ("speech", "speech_over_noise", "babble", "noise", "hum", "room_tone")
# espeak-ng voices: (voice, words per minute range). Languages other than English are realistic in a
# home and keep the class about speech, not about English phonetics.
VOICES: dict[str, tuple[str, ...]] = {
    "train": ("en-us+f1", "en-gb+m2", "en-gb-x-rp+f4", "en-029+m4", "de+m3", "fr-fr+f2", "es+m1", "it+f3",
              "nl+m5", "pl+f5", "pt+m6", "sv+f1", "en-us-nyc+m7", "en-gb-scotland+f3"),
    "eval": ("en", "en-us+m3", "en-gb+f2", "de+f4", "fr-fr+m2", "es+f2"),
}
TEXTS: dict[str, tuple[str, ...]] = {
    "train": (
        "Good evening, here are the main headlines at the top of the hour.",
        "Turn left at the next junction and then keep going straight for two kilometres.",
        "I can't find my keys anywhere, have you seen them on the kitchen table?",
        "Tomorrow will be windy in the north with scattered showers spreading from the west.",
        "And that brings us to the end of today's episode, thank you all for listening.",
        "She said the package would arrive on Monday, but it still has not come.",
        "Add two cups of flour, a pinch of salt and stir until the dough is smooth.",
        "The committee will publish its final recommendations early next spring.",
        "Why don't we order pizza tonight and watch something light and funny?",
        "Please hold the line, your call is important to us and will be answered shortly.",
        "Seven, twelve, thirty four, ninety nine, one hundred and six.",
        "The museum opens at ten and closes at six, except on public holidays.",
    ),
    "eval": (
        "Have you finished your homework, or do we need to sit down together after dinner?",
        "Traffic is heavy on the ring road this morning because of an accident near the bridge.",
        "I really liked the second chapter, although the ending felt a little rushed to me.",
        "Welcome back to the programme, today we are talking about gardening in small spaces.",
        "Can somebody open a window, it is getting far too warm in here.",
        "The doctor said I should walk for half an hour every day and drink more water.",
    ),
}


def _espeak(voice: str, wpm: int, pitch: int, text: str, sample_rate: int) -> FloatArray:
    with tempfile.TemporaryDirectory() as tmp:
        out = pathlib.Path(tmp) / "speech.wav"
        render_espeak(voice, wpm, pitch, text, out)
        return load_audio(out, sample_rate)


def _unit_rms(x: npt.NDArray[np.float32] | npt.NDArray[np.float64]) -> FloatArray:
    return (x / max(float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))), 1e-12)).astype(np.float32)


def speech_track(n: int, sample_rate: int, rng: np.random.Generator, purpose: str) -> FloatArray:
    """Unit-RMS speech, ``n`` samples: utterances of one random voice separated by 0.2-1.5 s pauses."""
    voice = str(rng.choice(VOICES[purpose]))
    out = np.zeros(n, dtype=np.float32)
    pos = int(rng.uniform(0.0, 0.5) * sample_rate)
    while pos < n:
        text = str(rng.choice(TEXTS[purpose]))
        utterance = _espeak(voice, int(rng.integers(130, 200)), int(rng.integers(25, 75)), text, sample_rate)
        take = min(utterance.size, n - pos)
        out[pos : pos + take] = utterance[:take]
        pos += take + int(rng.uniform(0.2, 1.5) * sample_rate)
    return _unit_rms(out)


def negative_clip(kind: str, sample_rate: int, rng: np.random.Generator, purpose: str) -> FloatArray:
    """One ``CLIP_SECONDS`` clip of ``kind`` (see KINDS), float32 mono, peak-safe, at a random level.

    Levels span -45..-12 dBFS RMS: a talker across the room up to a TV close to the microphone.
    """
    if purpose not in VOICES:
        raise ValueError(f"unknown purpose {purpose!r}; valid purposes: {', '.join(VOICES)}")
    n = int(CLIP_SECONDS * sample_rate)
    if kind == "speech":
        x = speech_track(n, sample_rate, rng, purpose)
    elif kind == "speech_over_noise":
        snr_db = rng.uniform(0.0, 20.0)
        noise = colored_noise(n, sample_rate, rng, rng.uniform(0.2, 1.0), rng.uniform(0.0, 1.0))
        x = speech_track(n, sample_rate, rng, purpose) + 10 ** (-snr_db / 20) * noise
    elif kind == "babble":
        talkers = int(rng.integers(2, 6))
        x = sum((speech_track(n, sample_rate, rng, purpose) for _ in range(talkers)), np.zeros(n, np.float32))
    elif kind == "noise":
        x = colored_noise(n, sample_rate, rng, rng.uniform(0.0, 1.0), rng.uniform(0.0, 1.0))
        x = x + rng.uniform(0.0, 0.5) * rng.standard_normal(n).astype(np.float32)  # white: fans, rain
    elif kind == "hum":
        x = mains_hum(n, sample_rate, rng) + rng.uniform(0.05, 0.5) * colored_noise(n, sample_rate, rng, 1.0, 0.5)
    elif kind == "room_tone":
        x = colored_noise(n, sample_rate, rng, 1.0, rng.uniform(0.5, 2.0))
    else:
        raise ValueError(f"unknown negative kind {kind!r}; valid kinds: {', '.join(KINDS)}")
    level_db = rng.uniform(-45.0, -12.0) if kind != "room_tone" else rng.uniform(-60.0, -40.0)
    y = _unit_rms(x) * np.float32(10 ** (level_db / 20))
    return np.clip(y, -1.0, 1.0).astype(np.float32)


def write_negative_clips(root: pathlib.Path, count: int, *, seed: int, purpose: str = "train",
                         sample_rate: int = 22050) -> pathlib.Path:
    """Write ``count`` clips as ``<dir>/unknown/unknown.NNNNN.wav`` and return ``<dir>``.

    ``<dir>`` is a subfolder of ``root`` named by purpose, seed and a hash of this code, so a second
    run reuses the files and changed code never reuses stale ones. Kinds cycle through KINDS.
    """
    folder = root / f"negatives-{purpose}-s{seed}-{feature_code_tag()}"
    genre_dir = folder / NEGATIVE_LABEL
    genre_dir.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        path = genre_dir / f"{NEGATIVE_LABEL}.{i:05d}.wav"
        if path.exists():
            continue
        rng = np.random.default_rng([seed, i, 0 if purpose == "train" else 1])
        clip = negative_clip(KINDS[i % len(KINDS)], sample_rate, rng, purpose)
        part = path.with_name(f"{path.stem}.{os.getpid()}.part.wav")
        sf.write(part, clip, sample_rate, subtype="PCM_16")
        os.replace(part, path)  # atomic: parallel runs never read half a clip
    return folder


def negative_clips(root: pathlib.Path, count: int, *, seed: int, sample_rate: int = 22050) -> list[Clip]:
    """``count`` training clips of the reject class as trainer Clips (written on first use, then reused)."""
    folder = write_negative_clips(root, count, seed=seed, purpose="train", sample_rate=sample_rate)
    paths = sorted((folder / NEGATIVE_LABEL).glob(f"{NEGATIVE_LABEL}.*.wav"))[:count]
    return [Clip(clip_id=p.stem, genre=NEGATIVE_LABEL, path=p, sha256=file_sha256(p)) for p in paths]
