"""Cutting MFCC frame matrices into model windows and the numpy-side training augmentations.

No TensorFlow: the epoch's batches are built here with a seeded numpy Generator, so a run is
reproducible from ``--seed`` and the same code serves CV folds and the shipped model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from edge.features import normalize_window, window_starts
from edge.spec import FeatureSpec
from trainer.model.recipes import Recipe

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


def cut_windows(frames: FloatArray, spec: FeatureSpec, hop_frames: int) -> FloatArray:
    """(n_frames, n_mfcc) -> (n_windows, frames_per_window, n_mfcc) raw windows ``hop_frames`` apart."""
    starts = list(window_starts(frames.shape[0], spec, hop_frames))
    n = spec.frames_per_window
    if not starts:
        return np.zeros((0, n, frames.shape[1]), dtype=np.float32)
    out: FloatArray = np.stack([frames[s : s + n] for s in starts]).astype(np.float32, copy=False)
    return out


def fit_normalization(windows: FloatArray, spec: FeatureSpec) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-coefficient mean and std of (optionally CMN'd) training windows, for ``FeatureSpec.mean/std``."""
    base = normalize_window(windows, spec.with_updates(mean=None, std=None))
    flat = base.reshape(-1, base.shape[-1]).astype(np.float64)
    std = np.maximum(flat.std(axis=0), 1e-3)
    return tuple(float(v) for v in flat.mean(axis=0)), tuple(float(v) for v in std)


def sample_crops(
    versions: Sequence[Sequence[FloatArray]],
    labels: IntArray,
    n_windows: int,
    recipe: Recipe,
    spec: FeatureSpec,
    rng: np.random.Generator,
    clean_out: FloatArray | None = None,
    teacher: Sequence[FloatArray] | None = None,
    teacher_out: FloatArray | None = None,
) -> tuple[FloatArray, IntArray]:
    """Random training windows: ``versions[i]`` are clip i's frame matrices (clean first, then augmented).

    Class-balanced when the recipe asks (every genre equally likely per window), else clip-uniform.
    ``clean_out`` (n_windows, frames, n_mfcc), if given, receives the clean window at the same frames
    as each crop (room copies are frame-aligned with their clip), without changing the random draws.
    ``teacher[i]`` (n_starts, n_classes), if given, is clip i's target per window start frame
    (trainer.teacher.targets.frame_table); ``teacher_out`` (n_windows, n_classes) receives each crop's.
    """
    n_classes = int(labels.max()) + 1
    if recipe.balanced_sampling:
        present = np.unique(labels)
        cls = rng.choice(present, size=n_windows)
        by_class = {int(c): np.flatnonzero(labels == c) for c in present}
        clip_idx = np.array([rng.choice(by_class[int(c)]) for c in cls], dtype=np.int64)
    else:
        clip_idx = rng.integers(0, labels.size, size=n_windows)
    del n_classes
    n = spec.frames_per_window
    out = np.empty((n_windows, n, spec.n_mfcc), dtype=np.float32)
    for j, i in enumerate(clip_idx):
        clip_versions = versions[int(i)]
        use_aug = len(clip_versions) > 1 and rng.random() < recipe.aug_fraction
        frames = clip_versions[int(rng.integers(1, len(clip_versions)))] if use_aug else clip_versions[0]
        start = int(rng.integers(0, frames.shape[0] - n + 1))
        out[j] = frames[start : start + n]
        if clean_out is not None:
            clean = clip_versions[0]
            at = min(start, clean.shape[0] - n)
            clean_out[j] = clean[at : at + n]
        if teacher is not None and teacher_out is not None:
            table = teacher[int(i)]
            teacher_out[j] = table[min(start, table.shape[0] - 1)]
    return out, labels[clip_idx]


def spec_augment(x: FloatArray, rng: np.random.Generator, time_masks: int = 2, max_time: int = 16,
                 coef_masks: int = 1, max_coef: int = 2) -> FloatArray:
    """SpecAugment-style masks on normalised windows (in place): zeroed frame spans and MFCC bands."""
    n, frames, coefs = x.shape
    t = np.arange(frames)[None, :]
    for _ in range(time_masks):
        width = rng.integers(0, max_time + 1, size=(n, 1))
        start = rng.integers(0, frames, size=(n, 1))
        x[(t >= start) & (t < start + width)] = 0.0
    c = np.arange(coefs)[None, :]
    for _ in range(coef_masks):
        width = rng.integers(0, max_coef + 1, size=(n, 1))
        start = rng.integers(0, coefs, size=(n, 1))
        mask = (c >= start) & (c < start + width)
        x.transpose(0, 2, 1)[mask] = 0.0
    return x


def mixup(x: FloatArray, y: FloatArray, alpha: float, rng: np.random.Generator) -> tuple[FloatArray, FloatArray]:
    """Convex mixes of random pairs; one Beta(alpha, alpha) weight per example, labels mixed alike."""
    lam = rng.beta(alpha, alpha, size=x.shape[0]).astype(np.float32)
    lam = np.maximum(lam, 1 - lam)  # keep the first example dominant so its label stays meaningful
    perm = rng.permutation(x.shape[0])
    xm = lam[:, None, None] * x + (1 - lam[:, None, None]) * x[perm]
    ym = lam[:, None] * y + (1 - lam[:, None]) * y[perm]
    return xm.astype(np.float32), ym.astype(np.float32)


def one_hot(labels: IntArray, n_classes: int) -> FloatArray:
    return np.eye(n_classes, dtype=np.float32)[labels]
