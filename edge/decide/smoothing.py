"""The previous rule's N-window mean of log-probabilities (``rule = "mean"``, kept as the measured
baseline), and the hysteresis both rules use; pure, no I/O.

The mean is the rule the trainer uses to score a whole clip (``edge.scoring.mean_log_probs``); its
memory is exactly N hops, which is also its weakness on a stream: it forgets a song after N hops
however sure it was (see ``edge.decide.hmm`` for the rule that replaced it).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from edge.scoring import mean_log_probs

FloatArray = npt.NDArray[np.float32]


class LogProbSmoother:
    """Keeps the last ``n_windows`` probability vectors in a preallocated ring."""

    def __init__(self, n_labels: int, n_windows: int) -> None:
        if n_labels < 1 or n_windows < 1:
            raise ValueError("n_labels and n_windows must be >= 1")
        self._ring = np.zeros((n_windows, n_labels), dtype=np.float32)
        self._next = 0
        self.count = 0

    @property
    def n_windows(self) -> int:
        return int(self._ring.shape[0])

    def reset(self) -> None:
        """Forget history (after silence or a capture gap, so a new song starts fresh)."""
        self._next = 0
        self.count = 0

    def push(self, probs: npt.NDArray[np.floating[Any]]) -> FloatArray:
        """Add one window's probabilities; return the smoothed distribution (sums to 1)."""
        self._ring[self._next] = probs
        self._next = (self._next + 1) % self.n_windows
        self.count = min(self.count + 1, self.n_windows)
        return self.smoothed()

    def smoothed(self) -> FloatArray:
        if self.count == 0:
            raise ValueError("no windows yet")
        # Row order does not matter for a mean, so the filled prefix (or the whole ring) is enough.
        return mean_log_probs(self._ring[: self.count])


class Hysteresis:
    """The published label changes only after a new label leads ``k`` consecutive windows.

    The first label is published at once (there is nothing to protect yet). Every label is
    treated alike, ``silence`` and ``unknown`` included, so a short pause or one ambiguous
    window does not flip the published genre either.
    """

    def __init__(self, k: int) -> None:
        if k < 1:
            raise ValueError("k must be >= 1")
        self.k = k
        self.published: str | None = None
        self._candidate: str | None = None
        self._streak = 0

    def update(self, label: str) -> tuple[str, bool]:
        """Feed this window's label; return (published label, whether it changed now)."""
        if self.published is None or label == self.published:
            changed = self.published is None
            self.published = label
            self._candidate, self._streak = None, 0
            return label, changed
        if label == self._candidate:
            self._streak += 1
        else:
            self._candidate, self._streak = label, 1
        if self._streak >= self.k:
            self.published = label
            self._candidate, self._streak = None, 0
            return label, True
        return self.published, False
