"""Seeded, stratified splits by clip (and the leaky split by segment, kept only to reproduce the baseline).

Pure functions over label arrays: no I/O, no TensorFlow. A split is an int array giving each unit
(clip or segment) its fold/part number, so it serialises trivially into the run's output.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]


def stratified_folds(labels: Sequence[int] | npt.NDArray[np.integer[Any]], n_folds: int, seed: int) -> IntArray:
    """Fold number (0..n_folds-1) per unit, so every class is spread as evenly as possible over folds.

    Within each class the units are shuffled and dealt round-robin; the deal starts where the previous
    class stopped, so small classes (fewer units than folds) do not all land in fold 0.
    """
    y = np.asarray(labels, dtype=np.int64)
    if n_folds < 2:
        raise ValueError(f"need at least 2 folds, got {n_folds}")
    if y.size < n_folds:
        raise ValueError(f"cannot split {y.size} units into {n_folds} folds")
    rng = np.random.default_rng(seed)
    folds = np.empty(y.size, dtype=np.int64)
    offset = 0
    for cls in np.unique(y):
        idx = np.flatnonzero(y == cls)
        rng.shuffle(idx)
        folds[idx] = (offset + np.arange(idx.size)) % n_folds
        offset = (offset + idx.size) % n_folds
    return folds


def holdout_parts(labels: Sequence[int] | npt.NDArray[np.integer[Any]], test_fraction: float, seed: int) -> IntArray:
    """0 = train, 1 = test per unit: stratified, at least one test unit per class with >= 2 units."""
    y = np.asarray(labels, dtype=np.int64)
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    parts = np.zeros(y.size, dtype=np.int64)
    for cls in np.unique(y):
        idx = np.flatnonzero(y == cls)
        rng.shuffle(idx)
        n_test = round(idx.size * test_fraction)
        if idx.size >= 2:
            n_test = min(max(n_test, 1), idx.size - 1)
        parts[idx[:n_test]] = 1
    return parts


def segment_folds(n_segments: int, n_folds: int, seed: int) -> IntArray:
    """LEAKY: folds over individual segments, ignoring which clip they came from (Velardo's split)."""
    if n_segments < n_folds:
        raise ValueError(f"cannot split {n_segments} segments into {n_folds} folds")
    rng = np.random.default_rng(seed)
    order = rng.permutation(n_segments)
    folds = np.empty(n_segments, dtype=np.int64)
    folds[order] = np.arange(n_segments) % n_folds
    return folds


def groups_overlap(groups: Sequence[str] | npt.NDArray[np.str_], parts: npt.NDArray[np.integer[Any]]) -> list[str]:
    """Groups (e.g. clip ids) whose units fall in more than one part; empty for a clean split."""
    seen: dict[str, int] = {}
    bad: set[str] = set()
    for group, part in zip(groups, np.asarray(parts).tolist(), strict=True):
        key = str(group)
        if seen.setdefault(key, int(part)) != int(part):
            bad.add(key)
    return sorted(bad)
