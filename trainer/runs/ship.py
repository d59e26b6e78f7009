"""Train one model on a held-out split, export float + int8 TFLite, check parity, write the edge bundle."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edge.bundle import MODEL_FILE, write_bundle_json
from edge.decide.params import DecisionParams
from trainer.augment.windows import cut_windows
from trainer.data.plan import CLEAN, HOLDOUT, RunPlan
from trainer.evaluate.metrics import confusion, per_class, thin_genres
from trainer.evaluate.reject import false_genre_report
from trainer.evaluate.scores import ClipWindows, score, scored_variant
from trainer.export.meta import bundle_meta
from trainer.export.tflite import TfliteRunner, check_parity, run_tflite, to_tflite
from trainer.model.recipes import Recipe
from trainer.model.train import prepare
from trainer.report.playlist_report import run_playlists, tflite_predictor
from trainer.runs.fit import CONDITIONS_CLEAN, Data, eval_hop, fit_and_evaluate, train_copies

log = logging.getLogger(__name__)
IntArray = npt.NDArray[np.int64]
REPRESENTATIVE_WINDOWS = 400
_BY = {"artist": "artist (an artist's clips and repeated excerpts on one side)", "clip": "clip (no artist metadata)"}


def ship(recipe: Recipe, data: Data, out: Path, *, plan: RunPlan, seed: int, threads: int | None,
         severities: Sequence[str], command: str, cache_dir: Path, save_float: bool = False,
         false_genre_clips: int = 24) -> dict[str, Any]:
    """Train on the plan's held-out split, export, verify, write ``out/model.tflite`` + ``model.json``; return the
    report. The plan (split.json) is written by the caller before the features were extracted."""
    split = plan.split(HOLDOUT)
    train_idx, test_idx = split.indices(data.clip_ids, 1)
    if len(train_idx) + len(test_idx) != len(data.clips):
        raise ValueError(f"the run plan covers {len(train_idx) + len(test_idx)} of {len(data.clips)} clips")
    result = fit_and_evaluate(recipe, data, train_idx, test_idx, seed=seed, threads=threads,
                              severities=severities, monitor=True)
    trained = result.trained
    spec = trained.spec
    n = len(data.labels)
    rng = np.random.default_rng(seed)
    # Representative data for int8 calibration: training windows only, clean and augmented alike.
    train_frames = [data.store.get(data.clips[i].clip_id, v) for i in train_idx
                    for v in (CLEAN, *train_copies(recipe, severities))]
    pool = np.concatenate([cut_windows(f, spec, spec.hop_frames) for f in train_frames])
    rep = prepare(pool[rng.choice(pool.shape[0], min(REPRESENTATIVE_WINDOWS, pool.shape[0]), replace=False)],
                  spec, recipe)
    float_bytes = to_tflite(trained.model, None)
    int8_bytes = to_tflite(trained.model, rep)
    hop = eval_hop(recipe, spec)
    y_test = data.y[test_idx]
    per_condition: dict[str, Any] = {}
    int8_clip_pred = np.zeros(0, dtype=np.int64)
    parity_result = None
    for cond in (CONDITIONS_CLEAN, *severities):
        cw = ClipWindows.build([data.store.get(data.clips[i].clip_id, scored_variant(cond)) for i in test_idx], y_test,
                               spec, hop)
        x = prepare(cw.windows, spec, recipe)
        if cond == CONDITIONS_CLEAN:
            parity_result = check_parity(float_bytes, int8_bytes, x)
            fl = score(run_tflite(float_bytes, x), cw, n)
            per_condition["float"] = fl.summary()
        q = score(run_tflite(int8_bytes, x), cw, n)
        per_condition[cond] = q.summary()
        if cond == CONDITIONS_CLEAN:
            int8_clip_pred = q.clip_pred
    assert parity_result is not None

    # The rule is tuned on playlists of training clips through the int8 model, and travels in model.json.
    playlist_run = run_playlists([data.clips[i] for i in test_idx], [data.clips[i] for i in train_idx], spec,
                                 tflite_predictor(int8_bytes), severities=severities, seed=seed, cache_dir=cache_dir,
                                 keep_timeline=True)
    # Speech published as a genre is measured with the rule the bundle ships, not the default constants.
    false_genre = false_genre_report(TfliteRunner(int8_bytes), spec, cache_dir=cache_dir, severities=severities,
                                     count=false_genre_clips, seed=seed,
                                     params=DecisionParams.from_dict(playlist_run.tuned))
    out.mkdir(parents=True, exist_ok=True)
    (out / MODEL_FILE).write_bytes(int8_bytes)
    if save_float:
        (out / "model_float.tflite").write_bytes(float_bytes)
    cm = confusion(y_test, int8_clip_pred, n)
    meta = bundle_meta(int8_bytes, recipe=recipe.name, architecture=recipe.model, params=trained.params,
                       quantization="int8 full-integer (int8 input/output)", seed=seed, train_clips=len(train_idx),
                       counts=data.counts(), test_clips=len(test_idx), command=command, decision=playlist_run.tuned)
    version = meta["version"]
    write_bundle_json(out, spec, meta)
    clean = per_condition[CONDITIONS_CLEAN]
    teacher: dict[str, Any] = {}
    if "teacher_head" in result.extra:
        head = result.extra["teacher_head"]
        teacher = {"head_float": head.summary(),
                   "per_genre_clip": per_class(confusion(y_test, head.clip_pred, n), data.labels)}
    return {
        "teacher": teacher,
        "clip_accuracy_float": per_condition["float"]["clip_accuracy"],
        "clip_accuracy_int8": clean["clip_accuracy"],
        "clip_macro_accuracy_float": per_condition["float"]["clip_macro_accuracy"],
        "clip_macro_accuracy_int8": clean["clip_macro_accuracy"],
        "segment_accuracy_float": per_condition["float"]["segment_accuracy"],
        "segment_accuracy_int8": clean["segment_accuracy"],
        "int8_float_top1_agreement": parity_result.top1_agreement,
        "parity": parity_result.to_dict(),
        "tflite_bytes": len(int8_bytes),
        "float_tflite_bytes": len(float_bytes),
        "params": trained.params,
        "train_seconds": trained.seconds,
        "train_clips": len(train_idx),
        "test_clips": len(test_idx),
        "robustness_int8": {k: v for k, v in per_condition.items() if k != "float"},
        "false_genre": false_genre,
        "playlist_run": playlist_run,  # popped by the CLI into the report's playlist sections
        "confusion_clip_int8": cm.tolist(),
        "per_genre_clip_int8": per_class(cm, data.labels),
        "thin_genres": thin_genres(cm, data.labels),
        "history": trained.history,
        "recipe": recipe.to_dict(),
        "version": version,
        "command": command,
        "protocol": plan.protocol,
        "split": f"by {_BY[plan.protocol]}, stratified, seeded (split.json)",
    }


