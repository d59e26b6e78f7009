"""Seeded, stratified splits by clip or by group of clips (artist), and the leaky split by segment (baseline only).

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


def _group_table(labels: npt.NDArray[np.int64], groups: Sequence[str]) -> tuple[list[str], npt.NDArray[np.int64]]:
    """Group names (first-seen order) and their (n_groups, n_classes) clip counts."""
    names = list(dict.fromkeys(str(g) for g in groups))
    index = {g: i for i, g in enumerate(names)}
    table = np.zeros((len(names), int(labels.max()) + 1 if labels.size else 0), dtype=np.int64)
    rows = np.array([index[str(g)] for g in groups], dtype=np.int64)
    np.add.at(table, (rows, labels), 1)
    return names, table


def grouped_folds(labels: Sequence[int] | npt.NDArray[np.integer[Any]], groups: Sequence[str], n_folds: int,
                  seed: int) -> IntArray:
    """Fold per unit such that every group sits in one fold, stratified by class as far as the groups allow.

    Greedy, largest group first (ties in a seeded order): each group goes to the fold where its classes
    are least represented so far, relative to each class's total (a group of mixed classes weighs each
    class by its share); ties go to the smaller fold, then the lower number. With one group per unit
    this deals like ``stratified_folds``.
    """
    y = np.asarray(labels, dtype=np.int64)
    if n_folds < 2:
        raise ValueError(f"need at least 2 folds, got {n_folds}")
    if len(groups) != y.size:
        raise ValueError(f"{len(groups)} groups for {y.size} units")
    names, table = _group_table(y, groups)
    if len(names) < n_folds:
        raise ValueError(f"cannot split {len(names)} groups into {n_folds} folds")
    rng = np.random.default_rng(seed)
    shuffled = rng.permutation(len(names))
    order = shuffled[np.argsort(-table.sum(axis=1)[shuffled], kind="stable")]
    totals = np.maximum(table.sum(axis=0), 1)
    fold_counts = np.zeros((n_folds, table.shape[1]), dtype=np.float64)
    group_fold = np.empty(len(names), dtype=np.int64)
    for g in order:
        share = table[g] / table[g].sum()
        load = (fold_counts / totals) @ share
        best = min(range(n_folds), key=lambda f: (round(float(load[f]), 9), fold_counts[f].sum(), f))
        group_fold[g] = best
        fold_counts[best] += table[g]
    index = {n: i for i, n in enumerate(names)}
    return np.array([group_fold[index[str(g)]] for g in groups], dtype=np.int64)


def grouped_holdout(labels: Sequence[int] | npt.NDArray[np.integer[Any]], groups: Sequence[str],
                    test_fraction: float, seed: int) -> IntArray:
    """0 = train, 1 = test per unit, whole groups only, about ``test_fraction`` of each class in test.

    Groups are taken largest first (seeded ties) into test while their class's test count stays within
    its target; a class with at least two groups and nothing in test then gets its smallest group, so
    every such class is scored. A class with a single group stays in training.
    """
    y = np.asarray(labels, dtype=np.int64)
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    names, table = _group_table(y, groups)
    rng = np.random.default_rng(seed)
    shuffled = rng.permutation(len(names))
    order = shuffled[np.argsort(-table.sum(axis=1)[shuffled], kind="stable")]
    target = table.sum(axis=0) * test_fraction
    in_test = np.zeros(len(names), dtype=bool)
    test_counts = np.zeros(table.shape[1], dtype=np.int64)
    for g in order:
        if np.all(test_counts + table[g] <= np.ceil(target)) and np.all(table.sum(axis=0) - test_counts - table[g]
                                                                       >= np.minimum(table[g], 1)):
            in_test[g] = True
            test_counts += table[g]
    for cls in range(table.shape[1]):
        mine = np.flatnonzero(table[:, cls] > 0)
        if test_counts[cls] == 0 and mine.size >= 2:
            g = mine[np.argmin(table[mine].sum(axis=1))]
            in_test[g] = True
            test_counts += table[g]
    index = {n: i for i, n in enumerate(names)}
    return np.array([int(in_test[index[str(g)]]) for g in groups], dtype=np.int64)
