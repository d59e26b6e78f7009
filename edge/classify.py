"""Classify a whole signal window by window (pure: frames in, results out; no I/O)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from edge.bundle import Bundle
from edge.features import make_engine, mfcc, normalize_window, window_starts
from edge.scoring import mean_log_probs


@dataclass(frozen=True)
class WindowResult:
    """One window's class probabilities; ``start_s``/``end_s`` in seconds from the signal start."""

    start_s: float
    end_s: float
    probs: npt.NDArray[np.float32]
    tags: npt.NDArray[np.float32] | None = None  # a tagger bundle's tag scores (bundle.tags.names order)


def classify_signal(
    signal: npt.NDArray[np.float32], bundle: Bundle, hop_frames: int | None = None
) -> list[WindowResult]:
    """Every full window of ``signal`` (mono, at ``bundle.spec.sample_rate``), ``hop_frames`` apart."""
    spec = bundle.spec
    frames = mfcc(signal, spec, make_engine(spec))
    scratch = np.empty(spec.input_shape, dtype=np.float32)
    span_s = spec.window_span_samples / spec.sample_rate
    results = []
    for start in window_starts(frames.shape[0], spec, hop_frames):
        window = normalize_window(frames[start : start + spec.frames_per_window], spec, out=scratch)
        start_s = start * spec.hop_length / spec.sample_rate
        probs = bundle.model.predict(window).copy()
        tags = bundle.model.output(bundle.tags.output) if bundle.tags else None
        results.append(WindowResult(start_s, start_s + span_s, probs, tags))
    return results


def mean_tags(results: list[WindowResult]) -> npt.NDArray[np.float32] | None:
    """Clip-level tag scores: the mean over windows (None without tags)."""
    rows = [r.tags for r in results if r.tags is not None]
    return np.mean(np.stack(rows), axis=0).astype(np.float32) if rows else None


def verdict(results: list[WindowResult]) -> npt.NDArray[np.float32]:
    """Clip-level probabilities: the renormalised mean of window log-probabilities."""
    return mean_log_probs(np.stack([r.probs for r in results]))
