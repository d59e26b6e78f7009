"""Would the device gain by adapting to its own room? Measured beside the head ablations, not shipped.

The idea (AdaBN-style): a room shifts the embedding's statistics, so re-standardise every window with the mean and
spread of what the device has heard instead of the training set's, moved ``blend`` of the way. A device's history is
whatever its owner played, though: an evening of one genre has that genre's statistics, and re-standardising to it
erases the very differences the head reads. So every blend is judged twice, on a history holding every test clip of
the condition (every genre heard) and on each of the largest genres' clips alone (the worst is reported).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from edge.decide.states import is_reject
from trainer.evaluate.scores import ClipWindows, score
from trainer.teacher.head import GenreHead

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]
BLENDS = {"all the way": 1.0, "a quarter of the way": 0.25}
ONE_GENRE_HISTORIES = 4  # the music genres with the most test clips, each alone as a history


def restandardised(x: FloatArray, head: GenreHead, history: FloatArray, blend: float) -> FloatArray:
    """``x`` mapped so that ``history``'s mean and spread (moved ``blend`` of the way from the head's training
    statistics) land on the training statistics: what the head then reads as a room-neutral embedding."""
    mean = (1 - blend) * head.mean + blend * history.mean(axis=0)
    std = (1 - blend) * head.std + blend * np.maximum(history.std(axis=0), 1e-6)
    out: FloatArray = ((x - mean) / std * head.std + head.mean).astype(np.float32)
    return out


def adaptation_rows(head: GenreHead, rows: dict[str, list[FloatArray]], y: IntArray,
                    labels: Sequence[str]) -> dict[str, dict[str, float]]:
    """Clip macro per condition: ``rows[condition]`` holds each test clip's window embeddings, ``y`` their labels.
    Keys: ``"{history}, {blend}"`` for both histories and every blend of :data:`BLENDS`."""
    music = [g for g in range(len(labels)) if not is_reject(labels[g])]
    largest = [g for g in sorted(music, key=lambda g: -int(np.sum(y == g))) if np.any(y == g)][:ONE_GENRE_HISTORIES]
    out: dict[str, dict[str, float]] = {}
    for cond, clips in rows.items():
        x = np.concatenate(clips)
        owner = np.concatenate([np.full(c.shape[0], k, dtype=np.int64) for k, c in enumerate(clips)])
        for blend_name, blend in BLENDS.items():
            every = _macro(head, restandardised(x, head, x, blend), owner, y, len(labels))
            out.setdefault(f"every genre heard, {blend_name}", {})[cond] = every
            if largest:
                one = min(_macro(head, restandardised(x, head, x[np.isin(owner, np.flatnonzero(y == g))], blend),
                                 owner, y, len(labels)) for g in largest)
                out.setdefault(f"one genre heard (worst of {len(largest)}), {blend_name}", {})[cond] = one
    return out


def _macro(head: GenreHead, x: FloatArray, owner: IntArray, y: IntArray, n_classes: int) -> float:
    probs = head.predict(x)
    return score(probs, ClipWindows(probs, owner, y), n_classes).clip_macro_accuracy
