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


_ABSENT_LOGIT = -30.0  # a class no training example had: probability ~e-30 in the exported graph


@dataclass(frozen=True)
class LinearHead:
    """``softmax(embedding @ weight + bias)``: a fitted head with its standardisation folded in, as it is exported."""

    weight: FloatArray  # (embedding dim, n_classes)
    bias: FloatArray  # (n_classes,)

    def predict(self, embedding: FloatArray) -> FloatArray:
        logits = np.asarray(embedding, dtype=np.float64) @ self.weight + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        out: FloatArray = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
        return out


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

    def linear(self) -> LinearHead:
        """The same head as one affine map of the raw embedding (what the TFLite graph computes)."""
        coef = np.asarray(self.model.coef_, dtype=np.float64)  # (classes seen, dim)
        icpt = np.asarray(self.model.intercept_, dtype=np.float64)
        if coef.shape[0] == 1:  # sklearn keeps one row for two classes: logit difference, as softmax of (0, z)
            coef, icpt = np.vstack([np.zeros_like(coef), coef]), np.array([0.0, icpt[0]])
        std = self.std.astype(np.float64)
        weight = np.zeros((coef.shape[1], self.n_classes))
        bias = np.full(self.n_classes, _ABSENT_LOGIT)
        weight[:, self.model.classes_] = (coef / std).T
        bias[self.model.classes_] = icpt - (coef / std) @ self.mean.astype(np.float64)
        return LinearHead(weight.astype(np.float32), bias.astype(np.float32))


def fit_arrays(x: FloatArray, y: IntArray, n_classes: int, seed: int = 0, c: float = C) -> GenreHead:
    """Fit on rows ``x`` (n, dim) with labels ``y``: standardised, class-balanced, L2 strength 1/``c``."""
    x64 = np.asarray(x, dtype=np.float64)
    mean = x64.mean(axis=0)
    std = np.maximum(x64.std(axis=0), 1e-6)
    model = LogisticRegression(C=c, class_weight="balanced", max_iter=300, random_state=seed)
    model.fit((x64 - mean) / std, y)
    return GenreHead(mean.astype(np.float32), std.astype(np.float32), model, n_classes)


def fit_head(clips: Sequence[ClipEmbedding], labels: IntArray, n_classes: int, seed: int = 0) -> GenreHead:
    """Fit on every patch of ``clips``; ``labels`` one per clip."""
    x = np.concatenate([c.embedding for c in clips])
    y = np.concatenate([np.full(c.embedding.shape[0], lab, dtype=np.int64) for c, lab in zip(clips, labels,
                                                                                               strict=True)])
    return fit_arrays(x, y, n_classes, seed)


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

