"""From the teacher's 3 s patches to a target for any student window: overlap-weighted, then softened."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]


def overlap_weights(window_starts_s: FloatArray, window_s: float, patch_starts_s: FloatArray,
                    patch_s: float) -> FloatArray:
    """(n_windows, n_patches) rows summing to 1: how much of each window each patch covers.

    A window past the last patch (the clip's tail) takes the nearest patch alone.
    """
    lo = np.maximum(window_starts_s[:, None], patch_starts_s[None, :])
    hi = np.minimum(window_starts_s[:, None] + window_s, patch_starts_s[None, :] + patch_s)
    w = np.clip(hi - lo, 0.0, None)
    empty = w.sum(axis=1) == 0
    if empty.any():
        centre = patch_starts_s + patch_s / 2
        nearest = np.abs((window_starts_s[empty] + window_s / 2)[:, None] - centre[None, :]).argmin(axis=1)
        w[np.flatnonzero(empty), nearest] = 1.0
    out: FloatArray = (w / w.sum(axis=1, keepdims=True)).astype(np.float32)
    return out


def soften(probs: FloatArray, temperature: float) -> FloatArray:
    """p ** (1/T), renormalised: T > 1 spreads the teacher's belief over its runner-up genres."""
    logp = np.log(np.clip(probs, 1e-8, 1.0)) / temperature
    logp -= logp.max(axis=1, keepdims=True)
    e = np.exp(logp)
    out: FloatArray = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
    return out


def frame_table(n_frames: int, frames_per_window: int, frame_s: float, window_s: float, patch_starts_s: FloatArray,
                patch_s: float, patch_probs: FloatArray) -> FloatArray:
    """Target for a window starting at each frame 0 .. n_frames - frames_per_window: (n_starts, n_classes)."""
    starts = np.arange(max(0, n_frames - frames_per_window + 1), dtype=np.float32) * frame_s
    out: FloatArray = overlap_weights(starts, window_s, patch_starts_s, patch_s) @ patch_probs
    return out.astype(np.float32)


def distill_targets(labels_1hot: FloatArray, teacher: FloatArray, weight: float) -> FloatArray:
    """The student's target: (1 - weight) x label + weight x teacher. Cross-entropy against it equals
    (1 - weight) CE(label) + weight KL(teacher || student) plus a constant (the teacher's entropy)."""
    out: FloatArray = ((1.0 - weight) * labels_1hot + weight * teacher).astype(np.float32)
    return out
