"""Smoothing (mean of log-probabilities), hysteresis and the level/confidence gates."""

from __future__ import annotations

import numpy as np
import pytest

from edge.decide.gates import FLOOR_DBFS, dbfs_from_mean_square, is_silent
from edge.decide.smoothing import Hysteresis, LogProbSmoother
from edge.scoring import mean_log_probs


def test_smoother_equals_clip_scoring_of_last_n_windows() -> None:
    rng = np.random.default_rng(3)
    probs = rng.dirichlet(np.ones(4), size=9).astype(np.float32)
    s = LogProbSmoother(4, 3)
    for p in probs:
        out = s.push(p)
    np.testing.assert_allclose(out, mean_log_probs(probs[-3:]), rtol=1e-6)
    assert out.sum() == pytest.approx(1.0, abs=1e-5)


def test_smoothing_is_a_geometric_not_an_arithmetic_mean() -> None:
    s = LogProbSmoother(2, 3)
    windows = np.array([[0.5, 0.5], [0.9, 0.1], [0.9, 0.1]], dtype=np.float32)
    for w in windows:
        out = s.push(w)
    g = np.exp(np.log(windows).mean(axis=0))
    np.testing.assert_allclose(out, g / g.sum(), rtol=1e-5)
    assert not np.allclose(out, windows.mean(axis=0), atol=1e-3), f"{out} equals the arithmetic mean"


def test_old_windows_leave_after_n_hops() -> None:
    s = LogProbSmoother(2, 2)
    s.push(np.array([0.99, 0.01]))
    s.push(np.array([0.2, 0.8]))
    out = s.push(np.array([0.2, 0.8]))
    np.testing.assert_allclose(out, [0.2, 0.8], rtol=1e-5)


def test_smoother_reset() -> None:
    s = LogProbSmoother(2, 4)
    s.push(np.array([0.9, 0.1]))
    s.reset()
    with pytest.raises(ValueError):
        s.smoothed()
    np.testing.assert_allclose(s.push(np.array([0.3, 0.7])), [0.3, 0.7], rtol=1e-5)


def test_hysteresis_publishes_first_label_at_once() -> None:
    h = Hysteresis(3)
    assert h.update("jazz") == ("jazz", True)
    assert h.update("jazz") == ("jazz", False)


def test_hysteresis_needs_k_consecutive_windows_to_change() -> None:
    h = Hysteresis(3)
    h.update("jazz")
    assert h.update("rock") == ("jazz", False)
    assert h.update("rock") == ("jazz", False)
    assert h.update("rock") == ("rock", True)


def test_hysteresis_streak_broken_by_published_or_other_label() -> None:
    h = Hysteresis(2)
    h.update("jazz")
    assert h.update("rock") == ("jazz", False)
    assert h.update("jazz") == ("jazz", False)  # back to the published genre: streak gone
    assert h.update("rock") == ("jazz", False)
    assert h.update("pop") == ("jazz", False)  # a different challenger restarts the count
    assert h.update("pop") == ("pop", True)


def test_hysteresis_k1_follows_every_change() -> None:
    h = Hysteresis(1)
    labels = ["a", "b", "b", "silence", "a"]
    assert [h.update(x)[0] for x in labels] == labels


def test_dbfs_full_scale_square_is_0_and_sine_is_minus_3() -> None:
    assert dbfs_from_mean_square(1.0) == pytest.approx(0.0)
    t = np.arange(48000) / 48000
    sine = np.sin(2 * np.pi * 1000 * t)
    assert dbfs_from_mean_square(float(np.mean(sine**2))) == pytest.approx(-3.01, abs=0.01)


def test_digital_silence_is_floored_not_minus_infinity() -> None:
    assert dbfs_from_mean_square(0.0) == FLOOR_DBFS
    assert dbfs_from_mean_square(float("nan")) == FLOOR_DBFS


def test_silence_gate_threshold_is_strict() -> None:
    assert is_silent(-60.0, -50.0)
    assert not is_silent(-50.0, -50.0)
    assert not is_silent(-20.0, -50.0)
