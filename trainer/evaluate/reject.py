"""The false-genre rate: how often the device would announce a genre for speech or household noise.

Measured as the daemon decides, not as a classifier scores: every clip is pushed through the daemon's
own ``Classifier`` (``edge.decide``: streaming MFCC, hop grid, silence gate, the decision rule) with
the rule the model ships with, fed by the int8 model. Clips are the reject class's *eval*
material (voices and sentences never used in training), clean and through the room chain, so the
figure says what a living room will see.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edge.audio import load_audio
from edge.decide.classifier import Classifier, Model
from edge.decide.params import DecisionParams
from edge.decide.states import PUBLISHED_NON_GENRES
from edge.spec import FeatureSpec
from trainer.data.negatives import KINDS, NEGATIVE_LABEL, write_negative_clips
from trainer.data.seeds import variant_seed
from trainer.data.variants import room

log = logging.getLogger(__name__)
FloatArray = npt.NDArray[np.float32]
NOT_A_GENRE = PUBLISHED_NON_GENRES


def daemon_verdicts(audio: FloatArray, spec: FeatureSpec, model: Model,
                    params: DecisionParams | None = None, hop_s: float = 1.0) -> list[str]:
    """What ``genre-daemon`` would publish after each window of ``audio``: the daemon's own Classifier.

    ``audio`` is mono at ``spec.sample_rate``, pushed in 0.1 s chunks as a microphone would deliver it.
    """
    classifier = Classifier(spec, model, params or DecisionParams(), hop_s)
    chunk = max(1, spec.sample_rate // 10)
    results = (classifier.push(audio[i : i + chunk]) for i in range(0, audio.size, chunk))
    return [r.published for r in results if r is not None]


def false_genre_report(model: Model, spec: FeatureSpec, *, cache_dir: Path, severities: Sequence[str],
                       count: int = 24, seed: int = 0, params: DecisionParams | None = None) -> dict[str, Any]:
    """False-genre rate (fraction of windows published as a genre) per condition, overall and per kind.

    ``model`` maps one normalised window to probabilities, as edge.runtime.TfliteModel does (in the
    trainer: trainer.export.tflite.TfliteRunner over the int8 model).
    """
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
                audio = room(audio, spec.sample_rate, condition, variant_seed(path.name, "reject", condition),
                             cache_dir)
            verdicts = daemon_verdicts(audio, spec, model, params, spec.hop_s)
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
