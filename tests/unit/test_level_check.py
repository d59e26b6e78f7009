"""The level check: clips scaled to exact RMS levels, and a verdict that follows the level when the model does."""

from __future__ import annotations

import numpy as np
import pytest

from edge.features import mfcc
from edge.spec import musicnn_spec
from tests.support.audio import rms_dbfs
from trainer.evaluate.level_check import LEVELS_DBFS, at_level, level_check

SR = 16000
LABELS = ("blues", "jazz", "not_music")


def _tone(seconds: float = 7.0, hz: float = 440.0, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    rng = np.random.default_rng(0)
    return (amp * np.sin(2 * np.pi * hz * t) + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.mark.parametrize("dbfs", [-10.0, -30.0, -50.0])
def test_a_clip_is_scaled_to_the_asked_rms(dbfs: float) -> None:
    out = at_level(_tone(), dbfs)
    assert out.dtype == np.float32
    assert rms_dbfs(out) == pytest.approx(dbfs, abs=0.01)


def test_too_loud_clips_at_full_scale_and_silence_stays_silent() -> None:
    loud = at_level(_tone(), 3.0)  # a sine's RMS 3 dB over full scale cannot fit: the card clips it
    assert np.max(np.abs(loud)) == pytest.approx(1.0)
    silent = np.zeros(SR, dtype=np.float32)
    assert not np.any(at_level(silent, -20.0))
    assert rms_dbfs(silent) == -np.inf


def test_the_check_reports_a_model_that_goes_deaf_when_quiet() -> None:
    """A model whose verdict depends on the level (as the tagger's did before its level step): right while the
    window is loud, not-music when it is quiet. The check's rows must show it fall; an identical row at every
    level would make the check useless."""
    spec = musicnn_spec(LABELS)
    clip = _tone()
    # c0 of the musicnn front end follows the window's mean log-mel power: a threshold between -20 and -45 dBFS.
    loud, quiet = (float(mfcc(at_level(clip, d), spec)[:, 0].mean()) for d in (-20.0, -45.0))
    threshold = (loud + quiet) / 2

    def predict(windows: np.ndarray) -> np.ndarray:
        heard = windows[:, :, 0].mean(axis=1) > threshold
        return np.where(heard[:, None], [0.8, 0.1, 0.1], [0.1, 0.1, 0.8]).astype(np.float32)

    result = level_check(predict, [(0, clip), (0, _tone(hz=220.0))], spec)
    rows = {r["level_dbfs"]: r for r in result["rows"]}
    assert result["clips"] == 2 and sorted(rows) == sorted(LEVELS_DBFS)
    assert rows[-10.0]["clip_accuracy"] == 1.0 and rows[-10.0]["windows_as_not_music"] == 0.0
    assert rows[-50.0]["clip_accuracy"] == 0.0 and rows[-50.0]["windows_as_not_music"] == 1.0
    assert result["original_rms_dbfs_median"] == pytest.approx(rms_dbfs(clip), abs=0.5)


def test_no_clips_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one clip"):
        level_check(lambda w: w, [], musicnn_spec(LABELS))
