"""Scoring clips: windows -> probabilities -> clip verdict (mean of window log-probabilities).

``score`` is pure numpy given window probabilities, so the same code scores Keras, float TFLite and
int8 TFLite outputs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from edge.scoring import mean_log_probs
from edge.spec import FeatureSpec
from trainer.augment.windows import cut_windows
from trainer.data.plan import CLEAN, eval_variant
from trainer.evaluate.metrics import accuracy, macro_accuracy, mean_std

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


@dataclass
class ClipWindows:
    """All evaluation windows of a set of clips, flattened, with the clip each window came from."""

    windows: FloatArray
    owner: IntArray  # clip index per window
    labels: IntArray  # true label per clip

    @classmethod
    def build(cls, frames: Sequence[FloatArray], labels: IntArray, spec: FeatureSpec, hop_frames: int) -> ClipWindows:
        cut = [cut_windows(f, spec, hop_frames) for f in frames]
        owner = np.concatenate([np.full(len(c), i, dtype=np.int64) for i, c in enumerate(cut)])
        return cls(np.concatenate(cut), owner, np.asarray(labels, dtype=np.int64))


@dataclass
class Scores:
    segment_accuracy: float
    clip_accuracy: float
    clip_macro_accuracy: float
    segment_macro_accuracy: float
    clip_pred: IntArray
    clip_probs: FloatArray

    def summary(self) -> dict[str, float]:
        return {"segment_accuracy": self.segment_accuracy, "segment_macro_accuracy": self.segment_macro_accuracy,
                "clip_accuracy": self.clip_accuracy, "clip_macro_accuracy": self.clip_macro_accuracy}


def score(window_probs: FloatArray, cw: ClipWindows, n_classes: int) -> Scores:
    """Segment- and clip-level accuracy (fractions 0..1) from per-window probabilities."""
    seg_pred = window_probs.argmax(axis=1)
    seg_true = cw.labels[cw.owner]
    n_clips = cw.labels.size
    clip_probs = np.zeros((n_clips, n_classes), dtype=np.float32)
    for i in range(n_clips):
        rows = window_probs[cw.owner == i]
        clip_probs[i] = mean_log_probs(rows) if rows.shape[0] else np.full(n_classes, 1.0 / n_classes)
    clip_pred = clip_probs.argmax(axis=1).astype(np.int64)
    return Scores(
        segment_accuracy=accuracy(seg_true, seg_pred),
        clip_accuracy=accuracy(cw.labels, clip_pred),
        clip_macro_accuracy=macro_accuracy(cw.labels, clip_pred, n_classes),
        segment_macro_accuracy=macro_accuracy(seg_true, seg_pred, n_classes),
        clip_pred=clip_pred,
        clip_probs=clip_probs,
    )


def evaluate(predict_fn: Callable[[FloatArray], FloatArray], cw: ClipWindows, n_classes: int) -> Scores:
    return score(predict_fn(cw.windows), cw, n_classes)


def scores_table(per_fold: Sequence[dict[str, float]]) -> dict[str, Any]:
    keys = per_fold[0].keys() if per_fold else ()
    return {k: mean_std([f[k] for f in per_fold]) for k in keys}


def scored_variant(condition: str) -> str:
    """The copy a scored clip is read from in ``condition``: ``clean`` itself, or that evaluation room's copy."""
    return CLEAN if condition == CLEAN else eval_variant(condition)
