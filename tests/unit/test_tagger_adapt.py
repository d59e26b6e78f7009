"""Re-standardising the head's input to the room: what it recovers with every genre heard, what one genre costs."""

from __future__ import annotations

import numpy as np
import pytest

from trainer.tagger.adapt import adaptation_rows, restandardised
from trainer.teacher.head import fit_arrays

LABELS = ("a", "b", "c", "not_music")


def _blobs(rng: np.random.Generator, n_per: int, shift: tuple[float, ...] = (0.0, 0.0, 0.0),
           scale: float = 1.0) -> tuple[np.ndarray, ...]:
    centres = np.array([[0.0, 0.0, 0.0], [4.0, 0.0, 0.0], [0.0, 4.0, 0.0], [0.0, 0.0, 4.0]])
    x = np.concatenate([c + rng.normal(size=(n_per, 3)) for c in centres]) * scale + np.array(shift)
    return x.astype(np.float32), np.repeat(np.arange(4), n_per)


def test_blend_zero_is_the_identity_and_full_blend_lands_the_history_on_the_training_statistics() -> None:
    rng = np.random.default_rng(0)
    x, y = _blobs(rng, 50)
    head = fit_arrays(x, y, 4, 0, 1.0)
    room, _ = _blobs(rng, 50, shift=(3.0, 1.0, -2.0), scale=0.5)
    assert np.allclose(restandardised(room, head, room, 0.0), room, atol=1e-5)
    mapped = restandardised(room, head, room, 1.0)
    assert np.allclose(mapped.mean(axis=0), head.mean, atol=1e-3)
    assert np.allclose(mapped.std(axis=0), head.std, atol=1e-3)


def test_every_genre_heard_recovers_a_shifted_room_and_one_genre_heard_wrecks_it() -> None:
    rng = np.random.default_rng(1)
    x, y = _blobs(rng, 200)
    head = fit_arrays(x, y, 4, 0, 1.0)
    # Test "clips" of 5 windows each, every window moved by the same room (shift and gain).
    clean_x, _ = _blobs(rng, 40)
    room_x, room_y = _blobs(rng, 40, shift=(-2.0, 3.0, 3.0), scale=0.5)
    clips = [room_x[i : i + 5] for i in range(0, room_x.shape[0], 5)]
    clip_y = room_y[::5].astype(np.int64)
    rows = adaptation_rows(head, {"clean": [clean_x[i : i + 5] for i in range(0, 160, 5)], "room": clips}, clip_y,
                           LABELS)
    assert set(rows) == {f"{history}, {blend}" for history in ("every genre heard", "one genre heard (worst of 3)")
                         for blend in ("all the way", "a quarter of the way")}
    probs = head.predict(np.concatenate(clips))
    unadapted = np.mean([probs[i * 5 : i * 5 + 5].mean(axis=0).argmax() == clip_y[i] for i in range(len(clips))])
    assert unadapted < 0.6  # the room moved the blobs off the head's boundaries
    assert rows["every genre heard, all the way"]["room"] == pytest.approx(1.0, abs=0.05)
    # One genre's statistics are not the room's: re-standardising to them moves the other genres off again.
    every, one = rows["every genre heard, all the way"], rows["one genre heard (worst of 3), all the way"]
    assert one["room"] < every["room"] - 0.25
    assert rows["every genre heard, all the way"]["clean"] == pytest.approx(1.0, abs=0.05)  # clean stays clean
