"""The tagger's published stream, judged honestly: the rule is tuned on predictions no head trained on.

A head fitted on a clip is sure of it, so playlists of training clips flap far less than the house will hear
(issue 24). The tagger's head is a cheap fit on cached embeddings, so the training clips are split by artist
into :data:`CROSSFIT` groups, a head is fitted on all groups but one, and that group's tuning playlists are
scored by it: every tuning window's probabilities come from a head that never saw the clip or its artist. The
rule is then tuned on all groups' playlists and judged, with the head fitted on all training clips, on test
playlists of clips that neither the heads nor the tuning saw. Not-music segments are made fresh for every
playlist ("train" voices and sentences for tuning, "eval" ones for testing, as :mod:`trainer.evaluate.playlist`
makes them); the heads did learn the reject class from clips of the train voices.

Window embeddings of a rendered playlist do not depend on the head, so they are computed once
(:class:`trainer.tagger.embed.InputEmbedder`, cached) and every head reads them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from edge.decide.params import DecisionParams
from edge.decide.tags import TagSensorParams
from trainer.data.split import grouped_folds
from trainer.evaluate.playlist_eval import (
    CLEAN,
    FoldPlaylists,
    PlaylistRun,
    PlaylistSetup,
    Predict,
    decide_runs,
    decoded_clips,
    judge,
    playlist_runs,
)
from trainer.evaluate.tradeoff import hop_tradeoff
from trainer.evaluate.tune_rule import GRID
from trainer.model.recipes import Recipe
from trainer.report.playlist_report import pick_clips
from trainer.tagger.fit import TaggerData, embedding_of
from trainer.tagger.heads import fit_head
from trainer.tagger.mixture import Head
from trainer.tagger.sensor_tune import judge_sensor, tune_sensor
from trainer.tagger.tag_sensors import READABLE, SENSORS, fit_sensor_heads, head_sensor_params, readable_scores
from trainer.teacher.head import LinearHead

log = logging.getLogger(__name__)
FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]
Embed = Callable[[FloatArray], FloatArray]  # model inputs (n, frames, 96) -> embedding-model rows (n, 50 + 1706)

CROSSFIT = 3  # artist groups of the training clips; each group's tuning playlists are scored by a head without it
TUNE_SETUP = PlaylistSetup(max_per_genre=2)  # per group: ~3 x 2 songs a genre in all, as many as a test fold has
TEST_SETUP = PlaylistSetup(max_per_genre=4)
TUNE_CONDITIONS = (CLEAN, "typical")  # the goals' two ends: the rule must be right clean and steady in a room
TEST_EXTRA = ("unseen_room",)  # besides clean and the training chain's severities: the unseen family's combined room


def head_predict(embed: Embed, head: Head, seen: list[FloatArray] | None = None) -> Predict:
    """Probabilities of a playlist's windows: the (cached) embedding model, then ``head``. With ``seen``, each
    call's embedding-model rows (tag scores, then the embedding) are appended to it, in call order."""

    def predict(x: FloatArray) -> FloatArray:
        rows = embed(x)
        if seen is not None:
            seen.append(rows)
        out: FloatArray = head.predict(embedding_of(rows)).astype(np.float32)
        return out

    return predict


def sensor_judged(runs: Sequence[PlaylistRun], scores_by_run: Sequence[FloatArray],
                  states: Sequence[Sequence[str]], sensors: Mapping[str, TagSensorParams],
                  readable: Sequence[str] = READABLE) -> dict[str, dict[str, dict[str, float]]]:
    """Per condition and tag sensor, :func:`trainer.tagger.sensor_tune.judge_sensor`'s figures: settled accuracy on
    the proxy songs and state changes per minute of settled song time, the sensors run as the daemon runs them (fed
    while music is published, reset by silence and not-music). ``scores_by_run`` holds each run's window scores in
    ``readable``'s order."""
    by_cond: dict[str, list[int]] = {}
    for i, run in enumerate(runs):
        by_cond.setdefault(run.condition, []).append(i)
    out: dict[str, dict[str, dict[str, float]]] = {}
    for cond, idx in by_cond.items():
        for name, params in sensors.items():
            _, positives, negatives = SENSORS[name]
            out.setdefault(cond, {})[name] = judge_sensor(
                params, readable, [runs[i] for i in idx], [scores_by_run[i] for i in idx], [states[i] for i in idx],
                positives, negatives)
    return out


def _pick(judged: Mapping[str, Mapping[str, Mapping[str, float]]], key: str) -> dict[str, dict[str, float]]:
    return {cond: {name: m[key] for name, m in per.items()} for cond, per in judged.items()}


def crossfit_tune_runs(recipe: Recipe, data: TaggerData, train_idx: IntArray, groups: Sequence[str],
                       copies: Sequence[str], *, embed: Embed, seed: int, cache_dir: Path | None,
                       conditions: Sequence[str] = TUNE_CONDITIONS,
                       sensor_scores: list[FloatArray] | None = None) -> list[PlaylistRun]:
    """Tuning playlists of ``train_idx``'s music clips, each group's scored by a head fitted without that group.
    With ``sensor_scores``, each run's readable scores (tags, then sensor heads also fitted without the group) are
    appended to it, in run order.

    ``groups`` holds every clip's artist group (``data.clips`` order)."""
    inner = grouped_folds(data.y[train_idx], [groups[i] for i in train_idx], CROSSFIT, seed)
    runs: list[PlaylistRun] = []
    for k in range(CROSSFIT):
        fit_idx, tune_idx = train_idx[inner != k], train_idx[inner == k]
        t0 = time.perf_counter()
        head = fit_head(recipe, data, fit_idx, copies, seed * 100 + k)
        clips = decoded_clips(pick_clips([data.clips[i] for i in tune_idx], TUNE_SETUP, seed + k),
                              data.spec.sample_rate)
        rows: list[FloatArray] = []
        runs += playlist_runs(clips, data.spec, head_predict(embed, head, rows), conditions=conditions,
                              seed=seed + 1 + k, purpose="train", cache_dir=cache_dir, setup=TUNE_SETUP,
                              name=f"tune{k}")
        if sensor_scores is not None:
            heads = fit_sensor_heads(data, fit_idx, copies, seed * 100 + k, recipe.head_c)
            sensor_scores += [readable_scores(r, heads) for r in rows]
        log.info("cross-fit group %d: head on %d clips, tuning playlists of %d clips, %.0f s", k, fit_idx.size,
                 len(clips), time.perf_counter() - t0)
    return runs


def stream_fold(recipe: Recipe, data: TaggerData, train_idx: IntArray, test_idx: IntArray, head: Head,
                groups: Sequence[str], copies: Sequence[str], *, severities: Sequence[str], embed: Embed, seed: int,
                cache_dir: Path | None, keep_timeline: bool = False, base_params: DecisionParams | None = None,
                sensor_heads: Mapping[str, LinearHead] | None = None) -> FoldPlaylists:
    """The rule tuned on cross-fitted playlists of ``train_idx``; it and the baseline judged on ``test_idx``'s
    playlists scored by ``head`` (fitted on ``train_idx``), clean, in each severity and in :data:`TEST_EXTRA`.
    The tag sensors run on the same playlists, reading ``sensor_heads`` (fitted on ``train_idx`` if None)."""
    t0 = time.perf_counter()
    tune_scores: list[FloatArray] = []
    tune_runs = crossfit_tune_runs(recipe, data, train_idx, groups, copies, embed=embed, seed=seed,
                                   cache_dir=cache_dir, sensor_scores=tune_scores)
    t1 = time.perf_counter()
    test = decoded_clips(pick_clips([data.clips[i] for i in test_idx], TEST_SETUP, seed), data.spec.sample_rate)
    rows: list[FloatArray] = []
    test_runs = playlist_runs(test, data.spec, head_predict(embed, head, rows),
                              conditions=[CLEAN, *severities, *TEST_EXTRA], seed=seed, purpose="eval",
                              cache_dir=cache_dir, setup=TEST_SETUP, name="test")
    rule = base_params or DecisionParams()
    result = judge(tune_runs, test_runs, data.labels, rule, grid=GRID["hmm"], keep_timeline=keep_timeline,
                   seconds={"tune_playlists": t1 - t0, "test_playlists": time.perf_counter() - t1})
    t2 = time.perf_counter()
    result.hops = hop_tradeoff(tune_runs, test_runs, data.labels, rule, GRID["hmm"])
    result.seconds["tradeoff"] = time.perf_counter() - t2
    result.tuning["how"] = tuning_note()
    heads = sensor_heads if sensor_heads is not None else fit_sensor_heads(data, train_idx, copies, seed,
                                                                             recipe.head_c)
    tuned = DecisionParams.from_dict(result.tuned)
    tune_states = decide_runs(tune_runs, data.labels, tuned)
    params: dict[str, TagSensorParams] = {}
    for name, base in head_sensor_params(heads).items():
        _, positives, negatives = SENSORS[name]
        params[name], result.sensor_tuning[name] = tune_sensor(base, READABLE, tune_runs, tune_scores, tune_states,
                                                               positives, negatives)
    result.sensor_params = {k: p.to_dict() for k, p in params.items()}
    states = decide_runs(test_runs, data.labels, tuned)
    judged = sensor_judged(test_runs, [readable_scores(r, heads) for r in rows], states, params)
    result.sensors = _pick(judged, "within_song_changes_per_min")
    result.sensor_accuracy = _pick(judged, "proxy_settled_accuracy")
    return result


def tuning_note() -> str:
    return (f"rule tuned on out-of-sample predictions: the training clips split into {CROSSFIT} artist groups, each "
            f"group's playlists ({', '.join(TUNE_CONDITIONS)}) scored by a head fitted on the other groups; judged on "
            "clips neither the heads nor the tuning saw")


def group_of(data: TaggerData, plan_ids: Sequence[str], plan_groups: Sequence[str]) -> list[str]:
    """Every clip's artist group in ``data.clips`` order, from a plan's (clip id, group) columns."""
    by_id: Mapping[str, str] = dict(zip(plan_ids, plan_groups, strict=True))
    return [by_id[c] for c in data.clip_ids]


__all__ = ["CROSSFIT", "crossfit_tune_runs", "group_of", "head_predict", "sensor_judged", "stream_fold",
           "tuning_note"]
