"""The streaming path's windows computed in one pass, for evaluating long recordings quickly.

``window_inputs`` gives the windows (and levels) the daemon's :class:`~edge.decide.classifier.Classifier`
would see at this hop; a caller batches them through its model; ``decide_windows`` then runs the very
same :class:`~edge.decide.decider.Decider`. The MFCC frames are bit-identical to the streaming ones
(``StreamingMfcc`` equals the batch ``mfcc``); the level differs only in that the daemon's sample ring
also holds the part of a capture chunk that ran past the window's end.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from edge.decide.decider import Decider, Decision
from edge.decide.gates import dbfs_from_mean_square, is_silent
from edge.decide.params import DecisionParams
from edge.features import Engine, make_engine, mfcc, normalize_window, window_starts
from edge.spec import FeatureSpec

FloatArray = npt.NDArray[np.float32]


def window_inputs(signal: FloatArray, spec: FeatureSpec, hop_frames: int,
                  engine: Engine | None = None) -> tuple[FloatArray, npt.NDArray[np.float64],
                                                             npt.NDArray[np.float64]]:
    """(model inputs (n, frames, n_mfcc), window level in dBFS (n,), window end time in s (n,))."""
    x = np.asarray(signal, dtype=np.float32)
    frames = mfcc(x, spec, engine or make_engine(spec))
    starts = np.asarray(window_starts(frames.shape[0], spec, hop_frames), dtype=np.int64)
    n, span = starts.size, spec.window_span_samples
    inputs = np.empty((n, *spec.input_shape), dtype=np.float32)
    for i, s in enumerate(starts):
        normalize_window(frames[s : s + spec.frames_per_window], spec, out=inputs[i])
    # Per-window mean square from a running sum: O(samples), not O(windows x span).
    cumsum = np.concatenate([[0.0], np.cumsum(np.square(x, dtype=np.float64))])
    first = starts * spec.hop_length
    mean_sq = (cumsum[first + span] - cumsum[first]) / span
    rms = np.array([dbfs_from_mean_square(float(m)) for m in mean_sq], dtype=np.float64)
    end_s = (first + span) / spec.sample_rate
    return inputs, rms, end_s.astype(np.float64)


def decide_windows(probs: npt.NDArray[np.floating[Any]] | Sequence[npt.NDArray[np.floating[Any]]],
                   rms_dbfs: npt.NDArray[np.float64] | Sequence[float], labels: tuple[str, ...],
                   params: DecisionParams) -> list[Decision]:
    """One decision per window, in order, exactly as the daemon decides them (level gate included)."""
    decider = Decider(labels, params)
    out = []
    for p, level in zip(probs, rms_dbfs, strict=True):
        out.append(decider.silent() if is_silent(float(level), params.silence_dbfs) else decider.update(p))
    return out
