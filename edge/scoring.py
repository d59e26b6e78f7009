"""Combining window probabilities: the clip verdict and the daemon's smoother use the same rule.

The mean of log-probabilities (a product of experts) rather than the mean of probabilities: one
confident window cannot outvote several that agree, and it matches how the trainer scores clips.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
AnyFloat = npt.NDArray[np.floating[Any]]
_FLOOR = 1e-6  # int8 outputs reach exact zeros; keep log() finite without hiding real disagreement


def mean_log_probs(probs: AnyFloat) -> FloatArray:
    """(n_windows, n_labels) probabilities -> (n_labels,) renormalised geometric mean."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] == 0:
        raise ValueError(f"need a non-empty (windows, labels) array, got shape {p.shape}")
    logp = np.log(np.clip(p, _FLOOR, 1.0)).mean(axis=0)
    logp -= logp.max()
    out = np.exp(logp)
    return np.asarray(out / out.sum(), dtype=np.float32)


def top_k(probs: AnyFloat, labels: tuple[str, ...], k: int = 3) -> list[tuple[str, float]]:
    """The ``k`` most probable labels with their probabilities, best first."""
    order = np.argsort(-np.asarray(probs), kind="stable")[:k]
    return [(labels[i], float(probs[i])) for i in order]
