"""The teacher's genre head: a class-balanced logistic regression on standardised patch embeddings.

Fitted on a run's training clips only (every patch of a clip carries the clip's label), it is both the
teacher's row in the report (what the knowledge is worth before it is squeezed onto the Pi) and the source
of the student's soft targets. A head that labels a clip it was fitted on mostly repeats the label, so the
training clips get **cross-fitted** targets: the clips are dealt into artist-grouped folds, and each fold's
targets come from a head fitted on the other folds alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sklearn.linear_model import LogisticRegression

from trainer.data.split import grouped_folds
from trainer.teacher.embed import ClipEmbedding

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]
C = 0.05  # inverse L2 strength: 1706 standardised dimensions, a few thousand patches


@dataclass
class GenreHead:
    mean: FloatArray
    std: FloatArray
    model: LogisticRegression
    n_classes: int

    def predict(self, embedding: FloatArray) -> FloatArray:
        """(n, n_classes) probabilities; classes the head never saw get 0."""
        z = (embedding - self.mean) / self.std
        out = np.zeros((embedding.shape[0], self.n_classes), dtype=np.float32)
        out[:, self.model.classes_] = self.model.predict_proba(z)
        return out


def fit_head(clips: Sequence[ClipEmbedding], labels: IntArray, n_classes: int, seed: int = 0) -> GenreHead:
    """Fit on every patch of ``clips``; ``labels`` one per clip."""
    x = np.concatenate([c.embedding for c in clips]).astype(np.float64)
    y = np.concatenate([np.full(c.embedding.shape[0], lab, dtype=np.int64) for c, lab in zip(clips, labels,
                                                                                               strict=True)])
    mean = x.mean(axis=0)
    std = np.maximum(x.std(axis=0), 1e-6)
    model = LogisticRegression(C=C, class_weight="balanced", max_iter=300, random_state=seed)
    model.fit((x - mean) / std, y)
    return GenreHead(mean.astype(np.float32), std.astype(np.float32), model, n_classes)


def cross_fitted(clips: Sequence[ClipEmbedding], labels: IntArray, groups: Sequence[str], n_classes: int, *,
                 folds: int, seed: int) -> list[FloatArray]:
    """Per clip, per patch probabilities from a head that saw neither the clip nor its artist group."""
    fold_of = grouped_folds(labels, groups, folds, seed)
    out: list[FloatArray] = [np.zeros((0, n_classes), dtype=np.float32)] * len(clips)
    for f in np.unique(fold_of):
        inside = np.flatnonzero(fold_of == f)
        outside = np.flatnonzero(fold_of != f)
        if np.unique(labels[outside]).size < 2:  # tiny data: no head can be fitted; the targets say nothing
            for i in inside:
                out[int(i)] = np.full((clips[int(i)].embedding.shape[0], n_classes), 1.0 / n_classes, np.float32)
            continue
        head = fit_head([clips[i] for i in outside], labels[outside], n_classes, seed)
        for i in inside:
            out[int(i)] = head.predict(clips[int(i)].embedding)
    return out

