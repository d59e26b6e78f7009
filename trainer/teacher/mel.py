"""musicnn's input: 16 kHz audio -> power mel spectrogram -> log10(10000 x + 1), cut into 3 s patches.

Computed by the edge's own front end (``edge.features`` with ``front_end = "musicnn"``), the code the device
runs, so the teacher that distils and the tagger that ships read the same input. ``log_mel_librosa`` is
musicnn's own recipe (librosa's defaults: Slaney mel, centred frames; values rounded through float16, the
arithmetic in float32 where musicnn overflows in float16), kept as the reference tests hold the edge to.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from edge.features import LogMelEngine, complete_frames
from edge.spec import musicnn_spec
from trainer.teacher.musicnn import N_MELS, PATCH_FRAMES

FloatArray = npt.NDArray[np.float32]
SAMPLE_RATE = 16000
N_FFT = 512
HOP = 256
# Patches every 3 s (not overlapping): a 3 s student window straddles at most two, and gets their
# overlap-weighted mix (trainer.teacher.targets); a finer grid costs the teacher's convolutions 2-4x.
PATCH_HOP = PATCH_FRAMES
FRAME_S = HOP / SAMPLE_RATE


def log_mel(audio: FloatArray) -> FloatArray:
    """(frames, 96) log-mel of mono 16 kHz audio, frames on the edge's grid (librosa's frame i + 1 is frame i)."""
    spec = musicnn_spec(("music", "other"))
    engine = LogMelEngine(spec)
    x = np.asarray(audio, dtype=np.float64)
    n = complete_frames(x.size, spec)
    if n == 0:
        return np.zeros((0, N_MELS), dtype=np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(x, spec.win_length)[:: spec.hop_length][:n]
    out: FloatArray = np.concatenate([engine.log_mel(frames[i : i + 256]) for i in range(0, n, 256)]).astype(
        np.float32)
    return out


def log_mel_librosa(audio: FloatArray) -> FloatArray:
    """(frames, 96) log-mel as musicnn computes it with librosa (centred frames): the reference."""
    import librosa  # lazy: only the reference test needs it

    power = librosa.feature.melspectrogram(y=np.asarray(audio, dtype=np.float32), sr=SAMPLE_RATE, n_fft=N_FFT,
                                           hop_length=HOP, n_mels=N_MELS).T
    rounded = power.astype(np.float16).astype(np.float32)
    out: FloatArray = np.log10(10000.0 * rounded + 1.0).astype(np.float32)
    return out


def patch_starts(n_frames: int, hop: int = PATCH_HOP) -> list[int]:
    """Start frames of the whole 188-frame patches of an ``n_frames`` spectrogram."""
    return list(range(0, n_frames - PATCH_FRAMES + 1, hop))


def patches(spectrogram: FloatArray, hop: int = PATCH_HOP) -> FloatArray:
    """(n_patches, 188, 96); zero patches for audio shorter than one."""
    starts = patch_starts(spectrogram.shape[0], hop)
    if not starts:
        return np.zeros((0, PATCH_FRAMES, N_MELS), dtype=np.float32)
    out: FloatArray = np.stack([spectrogram[s : s + PATCH_FRAMES] for s in starts])
    return out
