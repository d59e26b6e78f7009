"""What a run needs from the teacher: cross-fitted soft targets for its training clips, and its own scores.

Only the run's training clips ever reach a head: the test clips' embeddings are scored, never fitted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from edge.spec import FeatureSpec
from trainer.evaluate.scores import ClipWindows, Scores, score
from trainer.teacher.embed import ClipEmbedding
from trainer.teacher.head import cross_fitted, fit_head
from trainer.teacher.targets import frame_table, soften

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


def teacher_tables(embeddings: Sequence[ClipEmbedding], labels: IntArray, groups: Sequence[str],
                   frames: Sequence[int], spec: FeatureSpec, *, temperature: float, folds: int,
                   seed: int) -> list[FloatArray]:
    """Per training clip, the softened cross-fitted teacher target for a window at each start frame.

    ``frames[i]`` is clip i's MFCC frame count (clean copy; room copies are frame-aligned with it).
    """
    n_classes = len(spec.labels)
    probs = cross_fitted(embeddings, labels, groups, n_classes, folds=folds, seed=seed)
    frame_s = spec.hop_length / spec.sample_rate
    return [frame_table(n, spec.frames_per_window, frame_s, spec.window_s, e.starts_s, e.patch_s,
                        soften(p, temperature))
            for n, e, p in zip(frames, embeddings, probs, strict=True)]


def head_scores(train: Sequence[ClipEmbedding], y_train: IntArray, test: Sequence[ClipEmbedding], y_test: IntArray,
                n_classes: int, seed: int) -> Scores:
    """The teacher's own row: a head fitted on the training clips, scored on the test clips' patches
    (clip verdict = mean patch log-probability, as the student's clips)."""
    head = fit_head(train, y_train, n_classes, seed)
    probs = np.concatenate([head.predict(e.embedding) for e in test])
    owner = np.concatenate([np.full(e.embedding.shape[0], i, dtype=np.int64) for i, e in enumerate(test)])
    cw = ClipWindows(np.zeros((owner.size, 0, 0), dtype=np.float32), owner, np.asarray(y_test, dtype=np.int64))
    return score(probs, cw, n_classes)


def of(teacher: Mapping[str, ClipEmbedding], clip_ids: Sequence[str]) -> list[ClipEmbedding]:
    missing = [c for c in clip_ids if c not in teacher]
    if missing:
        raise ValueError(f"no teacher embedding for {len(missing)} clips (e.g. {missing[0]})")
    return [teacher[c] for c in clip_ids]
