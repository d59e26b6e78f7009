"""The tagger family behind the trainer's model interface: fit a head on a run's training clips, give window
probabilities of any clip copy, score a run's test clips.

Only the run's training clips (their clean windows and training copies) reach the head; test clips, their
evaluation rooms and the unseen family are only ever scored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from edge.spec import FeatureSpec
from trainer.data.plan import CLEAN
from trainer.evaluate.scores import ClipWindows, Scores, score, scored_variant
from trainer.model.recipes import Recipe
from trainer.tagger.embed import WindowEmbeddings
from trainer.tagger.export import N_TAGS
from trainer.tagger.mixture import Head
from trainer.teacher.head import GenreHead, fit_arrays

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


@dataclass
class TaggerData:
    """A run's clips (trainer.data.dataset.Clip), labels, and every planned copy's window embeddings."""

    clips: list[object]
    labels: tuple[str, ...]
    y: IntArray
    emb: WindowEmbeddings
    spec: FeatureSpec

    @property
    def clip_ids(self) -> list[str]:
        return [c.clip_id for c in self.clips]  # type: ignore[attr-defined]

    def counts(self) -> dict[str, int]:
        return {name: int(np.sum(self.y == i)) for i, name in enumerate(self.labels)}


def embedding_of(rows: FloatArray) -> FloatArray:
    """The head's input: the embedding model's output minus its leading tag scores."""
    return rows[:, N_TAGS:]


def training_windows(data: TaggerData, idx: Sequence[int] | IntArray, copies: Sequence[str],
                     label: Callable[[int, str], int]) -> tuple[FloatArray, IntArray]:
    """The head's input rows of every window of clips ``idx``, clean and each of ``copies`` (clip by clip), and
    ``label(clip index, variant)`` for each row: what every head fitted on a run's training clips reads."""
    xs, ys = [], []
    for i in idx:
        for variant in (CLEAN, *copies):
            rows = embedding_of(data.emb.get(data.clip_ids[i], variant))
            xs.append(rows)
            ys.append(np.full(rows.shape[0], label(int(i), variant), dtype=np.int64))
    return np.concatenate(xs), np.concatenate(ys)


def fit(recipe: Recipe, data: TaggerData, train_idx: IntArray, copies: Sequence[str], seed: int) -> GenreHead:
    """The head on every window of the training clips: clean and each of ``copies``."""
    x, y = training_windows(data, train_idx, copies, lambda i, _: int(data.y[i]))
    return fit_arrays(x, y, len(data.labels), seed, recipe.head_c)


def window_rows(data: TaggerData, idx: IntArray, variant: str) -> list[FloatArray]:
    """The head's input windows of clips ``idx`` in ``variant``, one array per clip."""
    return [embedding_of(data.emb.get(data.clip_ids[i], variant)) for i in idx]


def window_probs(head: Head | GenreHead, data: TaggerData, idx: IntArray, variant: str) -> ClipWindows:
    """``ClipWindows`` of clips ``idx`` in ``variant`` whose ``windows`` are the head's probabilities."""
    rows = window_rows(data, idx, variant)
    owner = np.concatenate([np.full(r.shape[0], k, dtype=np.int64) for k, r in enumerate(rows)])
    return ClipWindows(head.predict(np.concatenate(rows)), owner, data.y[idx])


def evaluate(head: Head | GenreHead, data: TaggerData, test_idx: IntArray,
             conditions: Sequence[str]) -> dict[str, Scores]:
    """Scores of the test clips clean (``"clean"``) and in each evaluation condition."""
    out = {}
    for cond in conditions:
        cw = window_probs(head, data, test_idx, scored_variant(cond))
        out[cond] = score(cw.windows, cw, len(data.labels))
    return out
