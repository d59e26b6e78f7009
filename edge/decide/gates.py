"""The level gate: pure functions over plain numbers.

dBFS here is ``20 * log10(rms)`` with full scale = 1.0, i.e. a full-scale square wave is 0 dBFS
and a full-scale sine is -3.01 dBFS. Digital silence is reported as :data:`FLOOR_DBFS` because
JSON cannot carry -inf.
"""

from __future__ import annotations

import math

FLOOR_DBFS = -120.0


def dbfs_from_mean_square(mean_square: float) -> float:
    """RMS level in dBFS from the mean of squared samples, floored at :data:`FLOOR_DBFS`."""
    if mean_square <= 0.0 or not math.isfinite(mean_square):
        return FLOOR_DBFS
    return max(FLOOR_DBFS, 10.0 * math.log10(mean_square))


def is_silent(rms_dbfs: float, threshold_dbfs: float) -> bool:
    """True when the window is quieter than the threshold (the model is then not run)."""
    return rms_dbfs < threshold_dbfs
