"""The reject class's material: seeded, disjoint between train and eval, and each kind what it claims."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from trainer.data.dataset import discover
from trainer.data.negatives import (
    CLIP_SECONDS,
    KINDS,
    NEGATIVE_LABEL,
    TEXTS,
    VOICES,
    negative_clip,
    negative_clips,
    write_negative_clips,
)

SR = 22050
pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")


def _frame_db(x: np.ndarray, frame_s: float = 0.05) -> np.ndarray:
    n = int(frame_s * SR)
    frames = x[: x.size // n * n].reshape(-1, n).astype(np.float64)
    return 10 * np.log10(np.mean(frames**2, axis=1) + 1e-20)


def test_train_and_eval_share_no_voice_and_no_sentence() -> None:
    assert not set(VOICES["train"]) & set(VOICES["eval"])
    assert not set(TEXTS["train"]) & set(TEXTS["eval"])


@pytest.mark.parametrize("kind", ["speech", "noise"])
def test_same_seed_same_clip_other_seed_other_clip(kind: str) -> None:
    a = negative_clip(kind, SR, np.random.default_rng(3), "eval")
    b = negative_clip(kind, SR, np.random.default_rng(3), "eval")
    c = negative_clip(kind, SR, np.random.default_rng(4), "eval")
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_is_a_30_s_clip_at_a_living_room_level(kind: str) -> None:
    x = negative_clip(kind, SR, np.random.default_rng(11), "train")
    assert x.dtype == np.float32 and x.size == int(CLIP_SECONDS * SR)
    assert np.isfinite(x).all() and float(np.abs(x).max()) <= 1.0
    rms_db = 20 * np.log10(float(np.sqrt(np.mean(x.astype(np.float64) ** 2))))
    low, high = (-61.0, -39.0) if kind == "room_tone" else (-46.0, -11.0)
    assert low <= rms_db <= high, f"{kind} at {rms_db:.1f} dBFS"


def test_speech_has_pauses_and_noise_is_steady() -> None:
    speech = _frame_db(negative_clip("speech", SR, np.random.default_rng(5), "train"))
    noise = _frame_db(negative_clip("noise", SR, np.random.default_rng(5), "train"))
    pauses = float(np.mean(speech < speech.max() - 40))
    assert pauses > 0.1, f"only {pauses:.0%} of 50 ms frames are pauses in the speech clip"
    spread = float(np.std(noise))
    assert spread < 3.0, f"noise frame levels vary by {spread:.1f} dB (std); should be steady"


def test_written_clips_are_a_gtzan_genre_folder_and_reused(tmp_path: Path) -> None:
    folder = write_negative_clips(tmp_path, 3, seed=2, purpose="eval")
    files = sorted((folder / NEGATIVE_LABEL).glob("*.wav"))
    assert [f.name for f in files] == [f"{NEGATIVE_LABEL}.{i:05d}.wav" for i in range(3)]
    stamps = [f.stat().st_mtime_ns for f in files]
    assert write_negative_clips(tmp_path, 3, seed=2, purpose="eval") == folder
    assert [f.stat().st_mtime_ns for f in files] == stamps, "a second run must reuse the clips"
    # One genre is not enough to train on, so add a second folder next to it before discovering.
    other = folder / "pop"
    other.mkdir()
    shutil.copy(files[0], other / "pop.00000.wav")
    clips, skipped = discover(folder)
    assert {c.genre for c in clips} == {NEGATIVE_LABEL, "pop"} and not skipped


def test_bad_kind_and_purpose_are_named() -> None:
    with pytest.raises(ValueError, match="valid kinds"):
        negative_clip("thunder", SR, np.random.default_rng(0), "train")
    with pytest.raises(ValueError, match="valid purposes"):
        negative_clip("noise", SR, np.random.default_rng(0), "test")


def test_negative_clips_are_trainer_clips_of_the_reject_class(tmp_path: Path) -> None:
    clips = negative_clips(tmp_path, 2, seed=7)
    assert [c.clip_id for c in clips] == [f"{NEGATIVE_LABEL}.00000", f"{NEGATIVE_LABEL}.00001"]
    assert all(c.genre == NEGATIVE_LABEL and c.path.is_file() and len(c.sha256) == 64 for c in clips)
