"""The false-genre rate: how often the device would announce a genre for speech or household noise.

Measured as the daemon decides, not as a classifier scores: every clip goes through the same window
grid, silence gate, log-probability smoother, confidence gate and hysteresis as ``genre-daemon`` with
its default settings (the pure functions are imported from ``daemon``), fed by the int8 model. Clips
are the reject class's *eval* material (voices and sentences never used in training), clean and through
the room chain, so the figure says what a living room will see.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from daemon.gates import SILENCE, UNKNOWN, candidate_label, dbfs_from_mean_square, is_silent
from daemon.settings import PipelineSettings
from daemon.smoothing import Hysteresis, LogProbSmoother
from edge.audio import load_audio
from edge.features import mfcc, window_starts
from edge.spec import FeatureSpec
from trainer.negatives import KINDS, NEGATIVE_LABEL, write_negative_clips

log = logging.getLogger(__name__)
FloatArray = npt.NDArray[np.float32]
NOT_A_GENRE = (SILENCE, UNKNOWN, NEGATIVE_LABEL)


def daemon_verdicts(window_probs: FloatArray, window_dbfs: Sequence[float], labels: tuple[str, ...],
                    settings: PipelineSettings | None = None) -> list[str]:
    """What the daemon would publish after each window: a genre, ``silence`` or ``unknown``."""
    s = settings or PipelineSettings()
    smoother = LogProbSmoother(len(labels), s.smoothing_windows)
    hysteresis = Hysteresis(s.hysteresis_windows)
    published = []
    for probs, level in zip(window_probs, window_dbfs, strict=True):
        if is_silent(level, s.silence_dbfs):
            smoother.reset()  # as the daemon does: music after a pause starts fresh
            candidate = SILENCE
        else:
            smoothed = smoother.push(probs)
            best = int(np.argmax(smoothed))
            candidate = candidate_label(labels[best], float(smoothed[best]), s.min_confidence)
        published.append(hysteresis.update(candidate)[0])
    return published


def windows_with_levels(audio: FloatArray, spec: FeatureSpec) -> tuple[FloatArray, list[float]]:
    """The raw MFCC windows of ``audio`` on the daemon's hop grid, and each window's RMS level in dBFS."""
    frames = mfcc(audio, spec)
    starts = list(window_starts(frames.shape[0], spec))
    windows = np.stack([frames[s : s + spec.frames_per_window] for s in starts])
    levels = []
    for s in starts:
        span = audio[s * spec.hop_length : s * spec.hop_length + spec.window_span_samples].astype(np.float64)
        levels.append(dbfs_from_mean_square(float(np.mean(span**2))))
    return windows, levels


def false_genre_report(probs_fn: Callable[[FloatArray], FloatArray], spec: FeatureSpec, *, cache_dir: Path,
                       severities: Sequence[str], count: int = 24, seed: int = 0) -> dict[str, Any]:
    """False-genre rate (fraction of windows published as a genre) per condition, overall and per kind.

    ``probs_fn`` maps raw MFCC windows (n, frames, n_mfcc) to probabilities (n, labels) — the int8
    model with the recipe's input preparation.
    """
    from trainer.dataset import variant_seed
    from trainer.degrade import degrade

    folder = write_negative_clips(cache_dir / "negatives", count, seed=seed, purpose="eval",
                                  sample_rate=spec.sample_rate)
    paths = sorted((folder / NEGATIVE_LABEL).glob("*.wav"))
    report: dict[str, Any] = {}
    for condition in ("clean", *severities):
        flagged = total = 0
        by_kind: dict[str, list[int]] = {kind: [0, 0] for kind in KINDS}
        for i, path in enumerate(paths):
            audio = load_audio(path, spec.sample_rate)
            if condition != "clean":
                audio = degrade(audio, spec.sample_rate, condition, variant_seed(path.name, "reject", condition),
                                purpose="eval", cache_dir=cache_dir)
            windows, levels = windows_with_levels(audio, spec)
            verdicts = daemon_verdicts(probs_fn(windows), levels, spec.labels)
            genre_windows = sum(v not in NOT_A_GENRE for v in verdicts)
            kind = KINDS[i % len(KINDS)]
            by_kind[kind][0] += genre_windows
            by_kind[kind][1] += len(verdicts)
            flagged += genre_windows
            total += len(verdicts)
        report[condition] = {
            "false_genre_rate": flagged / max(total, 1),
            "windows": total,
            "clips": len(paths),
            "by_kind": {k: v[0] / v[1] for k, v in by_kind.items() if v[1]},
        }
        log.info("false-genre rate %s: %.1f%% of %d windows", condition, 100 * flagged / max(total, 1), total)
    return report
