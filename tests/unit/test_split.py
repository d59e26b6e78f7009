"""Pure parts of the trainer: splits never put a clip on two sides; metrics and window helpers."""

from __future__ import annotations

import numpy as np
import pytest

from trainer.data.split import groups_overlap, holdout_parts, segment_folds, stratified_folds
from trainer.evaluate.metrics import accuracy, confusion, macro_accuracy, mean_std, per_class

# The subset's shape: two big genres and eight with ~10 clips.
LABELS = np.repeat(np.arange(10), [11, 100, 10, 10, 10, 11, 10, 100, 10, 10])


def test_folds_partition_clips_and_stratify() -> None:
    folds = stratified_folds(LABELS, 5, seed=0)
    assert folds.shape == LABELS.shape
    assert set(folds.tolist()) == set(range(5))
    for cls in range(10):
        counts = np.bincount(folds[cls == LABELS], minlength=5)
        assert counts.max() - counts.min() <= 1, (cls, counts)
    sizes = np.bincount(folds)
    assert sizes.max() - sizes.min() <= 2


def test_folds_are_seeded() -> None:
    assert np.array_equal(stratified_folds(LABELS, 5, 3), stratified_folds(LABELS, 5, 3))
    assert not np.array_equal(stratified_folds(LABELS, 5, 3), stratified_folds(LABELS, 5, 4))


def test_no_clip_in_two_parts_when_windows_inherit_the_clip_fold() -> None:
    folds = stratified_folds(LABELS, 5, seed=1)
    clip_ids = [f"clip{i}" for i in range(LABELS.size)]
    # Every window of a clip carries the clip's fold: the property the trainer relies on.
    window_clip = np.repeat(np.arange(LABELS.size), 27)
    assert groups_overlap([clip_ids[i] for i in window_clip], folds[window_clip]) == []


def test_segment_split_is_leaky_and_detected() -> None:
    owners = np.repeat(np.arange(20), 10)
    folds = segment_folds(owners.size, 5, seed=0)
    assert groups_overlap([str(o) for o in owners], folds)  # the leak the baseline suffers from


def test_holdout_keeps_every_genre_on_both_sides() -> None:
    parts = holdout_parts(LABELS, 0.2, seed=0)
    for cls in range(10):
        sides = parts[cls == LABELS]
        assert 0 < sides.sum() < sides.size
    assert 0.15 < parts.mean() < 0.25


def test_split_rejects_impossible_requests() -> None:
    with pytest.raises(ValueError):
        stratified_folds([0, 1], 5, 0)
    with pytest.raises(ValueError):
        stratified_folds([0, 1, 0, 1], 1, 0)
    with pytest.raises(ValueError):
        holdout_parts([0, 1], 1.5, 0)


def test_metrics() -> None:
    y = np.array([0, 0, 0, 0, 1, 2])
    p = np.array([0, 0, 0, 0, 0, 2])
    assert accuracy(y, p) == pytest.approx(5 / 6)
    assert macro_accuracy(y, p, 3) == pytest.approx((1 + 0 + 1) / 3)
    cm = confusion(y, p, 3)
    assert cm.tolist() == [[4, 0, 0], [1, 0, 0], [0, 0, 1]]
    pc = per_class(cm, ("a", "b", "c"))
    assert pc["a"]["precision"] == pytest.approx(0.8)
    assert pc["b"]["f1"] == 0.0
    stats = mean_std([0.5, 0.7])
    assert stats["mean"] == pytest.approx(0.6)
    assert stats["std"] == pytest.approx(0.1)
