"""Classification metrics as pure numpy: accuracy, macro (per-class mean recall), confusion, P/R/F1."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

IntLike = Sequence[int] | npt.NDArray[np.integer[Any]]
# Fewer test clips than this over all folds and a genre's recall moves by 5+ points per clip: flagged in tables.
MIN_TEST_CLIPS = 20


def confusion(y_true: IntLike, y_pred: IntLike, n_classes: int) -> npt.NDArray[np.int64]:
    """(n_classes, n_classes) counts; rows are true classes, columns predictions."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return cm


def accuracy(y_true: IntLike, y_pred: IntLike) -> float:
    """Fraction (0..1) of units predicted correctly; NaN for no units."""
    t, p = np.asarray(y_true), np.asarray(y_pred)
    return float(np.mean(t == p)) if t.size else float("nan")


def macro_accuracy(y_true: IntLike, y_pred: IntLike, n_classes: int) -> float:
    """Mean per-class recall (0..1) over the classes present in ``y_true``: every genre counts equally."""
    cm = confusion(y_true, y_pred, n_classes)
    support = cm.sum(axis=1)
    present = support > 0
    if not present.any():
        return float("nan")
    return float(np.mean(np.diag(cm)[present] / support[present]))


def per_class(cm: npt.NDArray[np.int64], labels: Sequence[str]) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 (0..1) and support per class from a confusion matrix."""
    out: dict[str, dict[str, float]] = {}
    tp = np.diag(cm).astype(np.float64)
    pred = cm.sum(axis=0).astype(np.float64)
    true = cm.sum(axis=1).astype(np.float64)
    for i, name in enumerate(labels):
        precision = tp[i] / pred[i] if pred[i] else 0.0
        recall = tp[i] / true[i] if true[i] else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out[name] = {"precision": precision, "recall": recall, "f1": f1, "support": int(true[i])}
    return out


def mean_std(values: Sequence[float]) -> dict[str, Any]:
    """{mean, std, n, values}; population std (ddof=0) over folds, NaNs ignored."""
    arr = np.asarray([v for v in values if v == v], dtype=np.float64)
    if arr.size == 0:
        return {"mean": float("nan"), "std": float("nan"), "n": 0, "values": []}
    return {"mean": float(arr.mean()), "std": float(arr.std()), "n": int(arr.size), "values": [float(v) for v in arr]}


def thin_genres(cm: npt.NDArray[np.int64], labels: Sequence[str], minimum: int = MIN_TEST_CLIPS) -> list[str]:
    """Classes with fewer than ``minimum`` true (test) units in ``cm``: their recall is too noisy to compare."""
    support = cm.sum(axis=1)
    return [name for name, n in zip(labels, support.tolist(), strict=True) if n < minimum]
