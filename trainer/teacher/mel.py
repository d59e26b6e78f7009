"""musicnn's input: 16 kHz audio -> power mel spectrogram -> log10(10000 x + 1), cut into 3 s patches.

As musicnn computes it (librosa's defaults: Slaney mel, centred frames), except that values are rounded
through float16 and the arithmetic done in float32 (musicnn multiplies in float16, which overflows on loud
bins). Pure numpy/librosa: runs in the embedding workers before any TensorFlow call.
"""

from __future__ import annotations

import librosa
import numpy as np
import numpy.typing as npt

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
    """(frames, 96) log-mel of mono 16 kHz audio."""
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
