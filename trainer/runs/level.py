"""``genre-train level --out BUNDLE``: a bundle's level check (:mod:`trainer.evaluate.level_check`) on its own
held-out music clips, merged into the bundle's report. Every tagger ship runs the same check; this runs it on any
bundle (an older one, the lite MFCC CNN) through the device's own code: the bundle as ``edge.bundle`` loads it,
each window normalised as the daemon normalises it."""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Sequence

import numpy as np

from edge.audio import load_audio
from edge.bundle import Bundle, load_bundle
from edge.decide.states import REJECT_LABELS
from edge.errors import UsageError
from edge.features import normalize_window
from trainer.data.dataset import Clip
from trainer.data.plan import HOLDOUT, PLAN_FILE, RunPlan
from trainer.evaluate.level_check import FloatArray, Predict, level_check, summary
from trainer.report.render import update_report
from trainer.runs.fit import find_clips
from trainer.runs.setup import setup

log = logging.getLogger(__name__)


def bundle_predict(bundle: Bundle) -> Predict:
    """Window probabilities as the device computes them: normalise, then the bundle's model, one window at a time."""
    spec, model = bundle.spec, bundle.model

    def predict(windows: FloatArray) -> FloatArray:
        out: FloatArray = np.stack([model.predict(normalize_window(w, spec)) for w in windows]).astype(np.float32)
        return out

    return predict


def held_out_music(plan: RunPlan, clips: Sequence[Clip], labels: Sequence[str], sample_rate: int,
                   max_per_genre: int | None = None) -> list[tuple[int, FloatArray]]:
    """(label index, decoded audio) of the plan's held-out clips that are music and whose genre the bundle knows;
    the first ``max_per_genre`` of each genre (in ``clips`` order) if given."""
    holdout = plan.split(HOLDOUT)
    picked: list[Clip] = []
    for c in clips:
        if (holdout.tests(c.clip_id) and c.genre in labels and c.genre not in REJECT_LABELS
                and (max_per_genre is None or sum(p.genre == c.genre for p in picked) < max_per_genre)):
            picked.append(c)
    return [(list(labels).index(c.genre), load_audio(c.path, sample_rate)) for c in picked]


def level_command(args: argparse.Namespace, command: str) -> int:
    started = time.perf_counter()
    if args.max_per_genre is not None and args.max_per_genre < 1:
        raise UsageError(f"--max-per-genre {args.max_per_genre}: must be at least 1")
    bundle = load_bundle(args.out)
    plan_path = args.out / PLAN_FILE
    if not plan_path.is_file():
        raise UsageError(f"{plan_path}: missing; the level check scores the bundle's own held-out clips")
    data_dir, _, _ = setup(args)
    clips, _ = find_clips(data_dir, False)
    music = held_out_music(RunPlan.load(plan_path), clips, bundle.spec.labels, bundle.spec.sample_rate,
                           args.max_per_genre)
    if not music:
        raise UsageError(f"none of {plan_path}'s held-out clips is in {data_dir}")
    result = {**level_check(bundle_predict(bundle), music, bundle.spec), "bundle": bundle.version,
              "command": command, "seconds": time.perf_counter() - started}
    update_report(args.out, {"level_check": result})
    log.info("level check of %s on %d held-out music clips: %s", bundle.version, len(music),
             summary(result))
    return 0


__all__ = ["bundle_predict", "held_out_music", "level_command"]
