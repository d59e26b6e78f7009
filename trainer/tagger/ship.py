"""Ship the tagger family: fit the head on the plan's training clips, score the held-out clips in every room,
export the one-graph bundle, check it against the trainer's own computation, tune the rule, write the bundle."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edge.audio import load_audio
from edge.bundle import MODEL_FILE, write_bundle_json
from edge.decide.params import DecisionParams
from edge.decide.states import REJECT_LABELS
from edge.decide.tags import sensor_params
from edge.features import mfcc
from trainer.data.plan import CLEAN, HOLDOUT, RunPlan
from trainer.evaluate.level_check import level_check
from trainer.evaluate.level_check import summary as level_summary
from trainer.evaluate.metrics import confusion, per_class, thin_genres
from trainer.evaluate.reject import false_genre_report
from trainer.evaluate.scores import ClipWindows, score
from trainer.export.meta import bundle_meta
from trainer.export.tflite import TfliteRunner, parity
from trainer.model.recipes import Recipe
from trainer.tagger import fit as tagger_fit
from trainer.tagger.ablations import ablate_heads
from trainer.tagger.embed import InputEmbedder
from trainer.tagger.export import TAGS, bundle_model, embedding_model
from trainer.tagger.fit import TaggerData
from trainer.tagger.heads import fit_head
from trainer.tagger.mixture import head_size
from trainer.tagger.stream import TEST_EXTRA, group_of, stream_fold
from trainer.tagger.tag_sensors import fit_sensors, readable_scores, tags_meta
from trainer.teacher.wheel import LICENCE, licence_text, msd_labels

log = logging.getLogger(__name__)
FloatArray = npt.NDArray[np.float32]
LICENCE_FILE = "LICENSE-musicnn.md"
PARITY_CLIPS = 40  # held-out clips whose clean windows run through the exported bundle besides the numpy head
FORM = "float16-stored weights (float32 compute)"


def ship_tagger(recipe: Recipe, data: TaggerData, out: Path, *, plan: RunPlan, copies: Sequence[str],
                conditions: Sequence[str], severities: Sequence[str], seed: int, command: str, cache_dir: Path,
                false_genre_clips: int = 24, ablations: bool = True) -> dict[str, Any]:
    """Fit, evaluate, export and write ``out/model.tflite`` + ``model.json`` + the tagger's licence; the report."""
    t0 = time.perf_counter()
    train_idx, test_idx = plan.split(HOLDOUT).indices(data.clip_ids, 1)
    head = fit_head(recipe, data, train_idx, copies, seed)
    fit_s = time.perf_counter() - t0
    n = len(data.labels)
    scores = tagger_fit.evaluate(head, data, test_idx, (CLEAN, *conditions))
    log.info("tagger head fitted in %.0f s; held-out clip macro: %s", fit_s,
             ", ".join(f"{k} {v.clip_macro_accuracy:.3f}" for k, v in scores.items()))

    ablated = (ablate_heads(recipe, data, train_idx, test_idx, copies, conditions, seed, shipped_scores=scores)
               if copies and ablations else {})
    if tuple(msd_labels(cache_dir)) != TAGS:
        raise RuntimeError("the tagger's tag names differ from trainer.tagger.export.TAGS (the bundle would mislabel)")
    # The sensors' params ship from the playlist tuning below; fit_sensors' untuned ones only judge the heads.
    sensor_heads, _, sensor_report = fit_sensors(data, train_idx, test_idx, copies, conditions, seed=seed,
                                                 c=recipe.head_c)
    model_bytes = bundle_model(cache_dir, head, list(sensor_heads.values()))
    # The exported graph against the trainer's computation (embedding model + numpy head) on the same windows.
    # Clean test windows as the device computes them (decode, edge front end), on the embedding cache's grid.
    check_idx = list(test_idx[:PARITY_CLIPS])
    check_cw = ClipWindows.build([mfcc(load_audio(data.clips[i].path, data.spec.sample_rate), data.spec)
                                  for i in check_idx], data.y[check_idx], data.spec, data.spec.frames_per_window)
    windows = check_cw.windows
    shipped_probs, shipped_sensors = TfliteRunner(model_bytes).with_output(windows, 2)
    trainer_probs = tagger_fit.window_probs(head, data, np.asarray(check_idx), CLEAN).windows
    if trainer_probs.shape != shipped_probs.shape:
        raise RuntimeError(f"window grids differ: {trainer_probs.shape} vs {shipped_probs.shape}")
    check = parity(trainer_probs, shipped_probs)
    prob_dp = float(np.abs(trainer_probs - shipped_probs).max())
    check_rows = np.concatenate([data.emb.get(data.clip_ids[i], CLEAN) for i in check_idx])
    trainer_sensors = readable_scores(check_rows, sensor_heads)[:, len(TAGS):]
    sensor_dp = float(np.abs(trainer_sensors - shipped_sensors).max())
    log.info("bundle vs trainer on %d windows: top-1 agreement %.4f, max |dp| %.4f (sensor heads %.4f)",
             windows.shape[0], check.top1_agreement, prob_dp, sensor_dp)

    # The bundle itself on the held-out music played from loud to the silence gate (trainer.evaluate.level_check).
    music = [i for i in test_idx if data.labels[data.y[i]] not in REJECT_LABELS]
    level = level_check(TfliteRunner(model_bytes), [(int(data.y[i]), load_audio(data.clips[i].path,
                                                                                 data.spec.sample_rate))
                                                    for i in music], data.spec)
    log.info("level check: %s", level_summary(level))

    # The rule: tuned on cross-fitted playlists of the training clips (trainer.tagger.stream), judged on the
    # held-out clips' playlists scored by the shipped head.
    spec = data.spec
    with InputEmbedder(embedding_model(cache_dir), cache_dir) as embed:
        groups = group_of(data, plan.clip_ids, plan.groups)
        playlist_run = stream_fold(recipe, data, train_idx, test_idx, head, groups, copies, severities=severities,
                                   embed=embed, seed=seed, cache_dir=cache_dir, keep_timeline=True,
                                   sensor_heads=sensor_heads)
    # The sensors' averaging time and band, tuned on the same cross-fitted playlists as the rule.
    sensors = sensor_params(playlist_run.sensor_params)
    for name, record in playlist_run.sensor_tuning.items():
        sensor_report[name]["steadiness_tuning"] = record
    false_genre = false_genre_report(TfliteRunner(model_bytes), spec, cache_dir=cache_dir,
                                     severities=(*severities, *TEST_EXTRA), count=false_genre_clips, seed=seed,
                                     params=DecisionParams.from_dict(playlist_run.tuned))
    out.mkdir(parents=True, exist_ok=True)
    (out / MODEL_FILE).write_bytes(model_bytes)
    (out / LICENCE_FILE).write_text(licence_text(cache_dir))
    meta = bundle_meta(model_bytes, recipe=recipe.name, architecture=recipe.model,
                       params=792_079 + head_size(head), quantization=FORM,
                       weights=f"MSD_musicnn (musicnn 0.1.0), licence {LICENCE}: see {LICENCE_FILE}", seed=seed,
                       train_clips=len(train_idx), counts=data.counts(), test_clips=len(test_idx), command=command,
                       decision=playlist_run.tuned, tags=tags_meta(sensors, sensor_heads))
    version = meta["version"]
    write_bundle_json(out, spec, meta)
    clean = scores[CLEAN].summary()
    shipped_clean = score(shipped_probs, check_cw, n).summary()
    cm = confusion(data.y[test_idx], scores[CLEAN].clip_pred, n)
    return {
        "family": "tagger",
        "form": FORM,
        "clip_accuracy_float": clean["clip_accuracy"],
        "clip_accuracy_int8": clean["clip_accuracy"],
        "clip_macro_accuracy_float": clean["clip_macro_accuracy"],
        "clip_macro_accuracy_int8": clean["clip_macro_accuracy"],
        "segment_accuracy_float": clean["segment_accuracy"],
        "segment_accuracy_int8": clean["segment_accuracy"],
        "bundle_check": {"clips": len(check_idx), "windows": int(windows.shape[0]), "bundle": shipped_clean,
                         "trainer": score(trainer_probs, check_cw, n).summary(),
                         "max_abs_prob_diff": prob_dp,
                         "sensor_heads_max_abs_prob_diff": sensor_dp},
        "int8_float_top1_agreement": check.top1_agreement,
        "parity": check.to_dict(),
        "tflite_bytes": len(model_bytes),
        "float_tflite_bytes": len(model_bytes),
        "params": meta["params"],
        "train_seconds": fit_s,
        "train_clips": len(train_idx),
        "test_clips": len(test_idx),
        "robustness_int8": {k: v.summary() for k, v in scores.items()},
        "per_genre_by_condition": {k: per_class(confusion(data.y[test_idx], v.clip_pred, n), data.labels)
                                   for k, v in scores.items()},
        "false_genre": false_genre,
        "level_check": {**level, "bundle": version, "command": command},
        "playlist_run": playlist_run,
        "tagger_ablations": ablated,
        "tag_sensors": sensor_report,
        "confusion_clip_int8": cm.tolist(),
        "per_genre_clip_int8": per_class(cm, data.labels),
        "thin_genres": thin_genres(cm, data.labels),
        "history": {},
        "recipe": recipe.to_dict(),
        "version": version,
        "command": command,
        "protocol": plan.protocol,
        "copies": list(copies),
    }

