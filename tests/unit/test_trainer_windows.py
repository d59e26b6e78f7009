"""Numpy-side training helpers: window cutting, normalisation statistics, augmentation, clip scoring."""

from __future__ import annotations

import numpy as np
import pytest

from edge.features import normalize_window
from edge.spec import FeatureSpec
from trainer.augment.windows import cut_windows, fit_normalization, mixup, sample_crops, spec_augment
from trainer.evaluate.scores import ClipWindows, score
from trainer.model.recipes import DEFAULT, get_recipe

SPEC = FeatureSpec(labels=("a", "b", "c"), cmn=True)


def _frames(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(3.0, 2.0, size=(n, SPEC.n_mfcc)).astype(np.float32)


def test_cut_windows_on_the_frame_grid() -> None:
    frames = _frames(1290, 0)  # a 30 s clip
    w = cut_windows(frames, SPEC, SPEC.frames_per_window)
    assert w.shape == (10, 126, 13)
    assert np.array_equal(w[3], frames[378:504])
    assert cut_windows(frames[:100], SPEC, 43).shape == (0, 126, 13)


def test_normalization_statistics_make_training_windows_standard() -> None:
    windows = cut_windows(_frames(2000, 1), SPEC, 43)
    mean, std = fit_normalization(windows, SPEC)
    x = normalize_window(windows, SPEC.with_updates(mean=mean, std=std))
    flat = x.reshape(-1, 13)
    assert np.allclose(flat.mean(axis=0), 0, atol=1e-4)
    assert np.allclose(flat.std(axis=0), 1, atol=1e-3)


def test_spec_augment_and_mixup() -> None:
    rng = np.random.default_rng(0)
    x = np.ones((64, 126, 13), dtype=np.float32)
    masked = spec_augment(x.copy(), rng, max_time=16, max_coef=2)
    zero_frames = (masked == 0).all(axis=2).sum(axis=1)
    assert zero_frames.max() <= 32 and zero_frames.sum() > 0
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 64)]
    xm, ym = mixup(x, y, 0.2, rng)
    assert xm.shape == x.shape
    assert np.allclose(ym.sum(axis=1), 1.0)
    assert (ym.max(axis=1) >= 0.5 - 1e-6).all()  # the first example stays dominant


def test_balanced_crops_draw_every_class_equally() -> None:
    labels = np.array([0] * 20 + [1] * 2 + [2] * 2)
    versions = [[_frames(300, i)] for i in range(labels.size)]
    recipe = get_recipe("default", aug_fraction=0.0)
    _, ys = sample_crops(versions, labels, 3000, recipe, SPEC, np.random.default_rng(0))
    counts = np.bincount(ys, minlength=3) / 3000
    assert np.allclose(counts, 1 / 3, atol=0.04)
    assert DEFAULT.balanced_sampling


def test_clean_twins_of_room_crops_are_frame_aligned_and_do_not_change_the_draws() -> None:
    labels = np.array([0, 1, 2])
    # A room copy here is its clip's frames plus 1000: the aligned clean window is the crop minus 1000.
    versions = [[_frames(300, i), _frames(300, i) + 1000.0] for i in range(labels.size)]
    recipe = get_recipe("default", aug_fraction=1.0)
    plain, ys_plain = sample_crops(versions, labels, 200, recipe, SPEC, np.random.default_rng(3))
    clean = np.empty_like(plain)
    crops, ys = sample_crops(versions, labels, 200, recipe, SPEC, np.random.default_rng(3), clean_out=clean)
    assert np.array_equal(crops, plain) and np.array_equal(ys, ys_plain)
    assert np.allclose(crops - 1000.0, clean, atol=1e-3)  # float32 spacing at 1000 is 6e-5


def test_clip_verdict_is_the_mean_of_window_log_probabilities() -> None:
    cw = ClipWindows(np.zeros((4, 126, 13), dtype=np.float32), np.array([0, 0, 0, 1]), np.array([0, 1]))
    probs = np.array([[0.9, 0.1, 0.0], [0.9, 0.1, 0.0], [0.001, 0.999, 0.0], [0.1, 0.8, 0.1]], dtype=np.float32)
    s = score(probs, cw, 3)
    # The arithmetic mean would pick class 0 for clip 0 (0.60 vs 0.40); the mean of log-probabilities picks 1.
    assert s.clip_pred.tolist() == [1, 1]
    assert s.segment_accuracy == pytest.approx(3 / 4)
    assert s.clip_accuracy == 0.5
