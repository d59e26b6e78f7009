"""Does the model hear the same music at any playback level? Held-out music clips, each played at fixed RMS levels.

A device beside a speaker hears the music anywhere from -10 dBFS (loud, a close microphone) to the silence gate
(-50 dBFS by default: a quiet evening, a MEMS microphone at low gain). The shipped tagger once fell from 92 % of the
held-out clips at -20 dBFS to 36 % at -50 (musicnn's log compression turns linear for quiet input), which no room
condition showed: every room copy sits near the music's own level. So every ship scores the bundle itself, through
the edge front end exactly as the device computes it, on its held-out music with each clip scaled to each level;
``genre-train level`` does the same for any bundle. Pure apart from the ``predict`` it is handed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from edge.decide.gates import dbfs_from_mean_square
from edge.decide.states import REJECT_LABELS
from edge.features import mfcc
from edge.spec import FeatureSpec
from trainer.evaluate.scores import ClipWindows, score

FloatArray = npt.NDArray[np.float32]
Predict = Callable[[FloatArray], FloatArray]  # model inputs (n, ...) -> probabilities (n, labels)
LEVELS_DBFS = (-10.0, -20.0, -30.0, -40.0, -45.0, -50.0)  # down to the daemon's default silence gate


def _mean_square(audio: FloatArray) -> float:
    return float(np.mean(np.square(audio, dtype=np.float64))) if audio.size else 0.0


def at_level(audio: FloatArray, dbfs: float) -> FloatArray:
    """``audio`` scaled to an RMS of ``dbfs`` (the daemon's gate's dBFS), clipped to full scale as a sound card would;
    digital silence stays silent."""
    ms = _mean_square(audio)
    if ms <= 0.0:
        return np.asarray(audio, dtype=np.float32)
    gain = 10 ** ((dbfs - dbfs_from_mean_square(ms)) / 20)
    out: FloatArray = np.clip(audio * np.float32(gain), -1.0, 1.0).astype(np.float32)
    return out


def level_check(predict: Predict, clips: Sequence[tuple[int, FloatArray]], spec: FeatureSpec,
                levels: Sequence[float] = LEVELS_DBFS) -> dict[str, Any]:
    """Clip accuracy and genre macro (fractions) of ``predict`` on ``clips`` ((label index, clean audio at
    ``spec.sample_rate``)) played at each level, with the share of windows whose top class is a reject label."""
    if not clips:
        raise ValueError("level_check needs at least one clip")
    labels = np.array([y for y, _ in clips], dtype=np.int64)
    reject = [i for i, name in enumerate(spec.labels) if name in REJECT_LABELS]
    rows = []
    for level in levels:
        cw = ClipWindows.build([mfcc(at_level(a, level), spec) for _, a in clips], labels, spec,
                               spec.frames_per_window)
        probs = predict(cw.windows)
        s = score(probs, cw, len(spec.labels))
        as_reject = float(np.isin(probs.argmax(axis=1), reject).mean()) if reject else 0.0
        rows.append({"level_dbfs": float(level), "clip_accuracy": s.clip_accuracy,
                     "clip_macro_accuracy": s.clip_macro_accuracy, "windows_as_not_music": as_reject})
    return {"clips": len(clips), "rows": rows,
            "original_rms_dbfs_median": float(np.median([dbfs_from_mean_square(_mean_square(a)) for _, a in clips]))}


def summary(result: dict[str, Any]) -> str:
    """One log line of :func:`level_check`'s rows: clip accuracy per level."""
    return ", ".join(f"{r['level_dbfs']:g} dBFS {100 * r['clip_accuracy']:.0f} %" for r in result["rows"])


__all__ = ["LEVELS_DBFS", "at_level", "level_check", "summary"]
