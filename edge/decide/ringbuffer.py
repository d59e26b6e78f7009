"""A preallocated float32 ring of the most recent mono samples (for the window's RMS).

The MFCC frames have their own ring inside ``edge.features.StreamingMfcc``; this one keeps the
raw samples of the same span so the silence gate measures exactly the audio the model would see.
``push`` only copies slices into the preallocated array: no allocation per chunk.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]


class SampleRing:
    """The newest ``capacity`` samples (sample count, not seconds) of a stream."""

    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError(f"capacity must be positive, got {capacity}")
        self.capacity = capacity
        self._buf = np.zeros(capacity, dtype=np.float32)
        self._write = 0  # index of the next sample to write
        self.filled = 0  # valid samples, <= capacity
        self.total = 0  # samples pushed since the last reset

    def reset(self) -> None:
        self._write = 0
        self.filled = 0
        self.total = 0

    def push(self, chunk: npt.NDArray[np.floating[Any]]) -> None:
        """Append mono samples of any length; only the newest ``capacity`` are kept."""
        n = int(chunk.shape[0])
        self.total += n
        if n == 0:
            return
        if n >= self.capacity:
            self._buf[:] = chunk[n - self.capacity :]
            self._write = 0
            self.filled = self.capacity
            return
        first = min(n, self.capacity - self._write)
        self._buf[self._write : self._write + first] = chunk[:first]
        if first < n:
            self._buf[: n - first] = chunk[first:]
        self._write = (self._write + n) % self.capacity
        self.filled = min(self.capacity, self.filled + n)

    def latest(self, n: int | None = None, out: FloatArray | None = None) -> FloatArray:
        """A copy of the newest ``n`` samples (all held samples by default), oldest first."""
        n = self.filled if n is None else n
        if not 0 <= n <= self.filled:
            raise ValueError(f"asked for {n} samples, {self.filled} held")
        result = np.empty(n, dtype=np.float32) if out is None else out[:n]
        start = (self._write - n) % self.capacity
        first = min(n, self.capacity - start)
        result[:first] = self._buf[start : start + first]
        result[first:] = self._buf[: n - first]
        return result

    def mean_square(self) -> float:
        """Mean of squared samples over everything held (0.0 when empty); full scale = 1.0."""
        if self.filled == 0:
            return 0.0
        # np.dot over the (at most two) filled slices: no temporary arrays.
        if self.filled < self.capacity:
            start = (self._write - self.filled) % self.capacity
            first = min(self.filled, self.capacity - start)
            a = self._buf[start : start + first]
            b = self._buf[: self.filled - first]
            total = float(np.dot(a, a)) + float(np.dot(b, b))
        else:
            total = float(np.dot(self._buf, self._buf))
        return total / self.filled
