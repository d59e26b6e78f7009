"""The playlist evaluation of one model: render playlists, run the model at the daemon's hop, decide, score.

Per fold (or for the shipped model): test playlists from the fold's own test clips, clean and through
every evaluation room (``degrade(..., purpose="eval")`` over the whole playlist: one living room per
playlist, whose automatic gain and noise carry across song changes); tuning playlists from clips the
tuner may see (``purpose="train"`` rooms, voices and sentences). Window probabilities are computed once
per playlist and condition; every rule is then run on them with the exact decision code.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edge.audio import load_audio
from edge.decide.batch import decide_windows, window_inputs
from edge.decide.params import BASELINE, DecisionParams
from edge.decide.states import REJECT_LABELS
from edge.spec import FeatureSpec
from trainer.data.seeds import variant_seed
from trainer.data.variants import room
from trainer.evaluate.metrics import mean_std
from trainer.evaluate.playlist import (
    PlaylistConfig,
    PlaylistPlan,
    clip_audio_for,
    plan_playlists,
    render,
    select_songs,
    songs_from,
)
from trainer.evaluate.stream_metrics import METRIC_KEYS, StreamCounts, Truth, combine, count, metrics, nest
from trainer.evaluate.tune_rule import tune_search

log = logging.getLogger(__name__)
FloatArray = npt.NDArray[np.float32]
Predict = Callable[[FloatArray], FloatArray]  # normalised model inputs (n, ...) -> probabilities (n, labels)
PLAYLIST_S = 600.0  # aim for ~10 min per playlist: long enough to settle, short enough to degrade quickly
CLEAN = "clean"


@dataclass(frozen=True)
class PlaylistSetup:
    """How many clips go into a fold's playlists; ``max_per_genre`` keeps big genres from dominating."""

    max_per_genre: int | None = 5
    playlist_s: float = PLAYLIST_S
    config: PlaylistConfig = field(default_factory=PlaylistConfig)


@dataclass
class PlaylistRun:
    """One playlist in one condition: the model's window probabilities, window levels and the truth."""

    plan: PlaylistPlan
    condition: str
    probs: FloatArray
    rms_dbfs: npt.NDArray[np.float64]
    truth: Truth


def keras_predictor(model: Any, batch: int = 1024) -> Predict:
    """Predict from already-normalised inputs with a Keras model (1D or 2D input layout)."""
    wants_channel = len(model.input_shape) == 4

    def predict(x: FloatArray) -> FloatArray:
        if x.shape[0] == 0:
            return np.zeros((0, int(model.output_shape[-1])), dtype=np.float32)
        inp = x[..., None] if wants_channel else x
        parts = [np.asarray(model(inp[i : i + batch], training=False)) for i in range(0, inp.shape[0], batch)]
        out: FloatArray = np.concatenate(parts).astype(np.float32)
        return out

    return predict


def decoded_clips(clips: Sequence[Any], sample_rate: int) -> dict[str, tuple[str, FloatArray]]:
    """``{clip_id: (genre, audio)}`` for trainer Clips, decoded at ``sample_rate``."""
    return {c.clip_id: (c.genre, load_audio(c.path, sample_rate)) for c in clips}


def playlist_runs(clips: Mapping[str, tuple[str, FloatArray]], spec: FeatureSpec, predict: Predict, *,
                  conditions: Sequence[str], seed: int, purpose: str, cache_dir: Path | None,
                  setup: PlaylistSetup | None = None, not_music: bool = True,
                  name: str = "playlist") -> list[PlaylistRun]:
    """Build playlists from ``clips`` and run the model over each in every condition."""
    st = setup or PlaylistSetup()
    sr = spec.sample_rate
    songs = select_songs(songs_from(clips), st.max_per_genre, seed)
    total_s = sum(s.samples for s in songs) / sr
    n_playlists = max(1, min(len(songs), round(total_s / st.playlist_s)))
    plans = plan_playlists(songs, n_playlists, sr, seed, st.config, not_music=not_music, name=name)
    audio_of = {cid: audio for cid, (_, audio) in clips.items()}
    hop_frames = spec.hop_frames  # the hop the bundle ships with: genre-daemon's default, the rule's unit
    hop_s = hop_frames * spec.hop_length / sr
    runs = []
    for plan in plans:
        clean = render(plan, clip_audio_for(plan, audio_of, purpose), seed, st.config)
        for cond in conditions:
            audio = clean if cond == CLEAN else room(clean, sr, cond, variant_seed(plan.name, seed, cond), cache_dir,
                                                     purpose=purpose)
            inputs, rms, end_s = window_inputs(np.asarray(audio, dtype=np.float32), spec, hop_frames)
            runs.append(PlaylistRun(plan, cond, predict(inputs), rms, plan.truth(end_s, hop_s)))
    return runs


def decide_runs(runs: Sequence[PlaylistRun], labels: tuple[str, ...],
                params: DecisionParams) -> list[list[str]]:
    """Published state per hop of every run, by the exact decision code."""
    return [[d.state for d in decide_windows(r.probs, r.rms_dbfs, labels, params)] for r in runs]


def score_runs(runs: Sequence[PlaylistRun], states: Sequence[Sequence[str]]) -> dict[str, dict[str, float]]:
    """Flat metrics per condition, pooled over the condition's playlists."""
    by_cond: dict[str, list[StreamCounts]] = {}
    for run, st in zip(runs, states, strict=True):
        by_cond.setdefault(run.condition, []).append(count(run.truth, st))
    return {c: metrics(combine(parts)) for c, parts in by_cond.items()}


@dataclass
class FoldPlaylists:
    """What one fold (or the shipped model) contributes to the report; small enough to pickle back."""

    tuned: dict[str, Any]  # DecisionParams.to_dict()
    metrics: dict[str, dict[str, float]]  # condition -> flat metrics, tuned rule
    baseline: dict[str, dict[str, float]]  # condition -> flat metrics, BASELINE
    tuning: dict[str, Any]  # the tuner's own score and metrics on the tuning playlists
    counts: dict[str, Any]  # playlists, songs, minutes
    seconds: dict[str, float]
    timeline: list[dict[str, Any]] = field(default_factory=list)  # per run: plan, condition, states (tuned)
    sensors: dict[str, dict[str, float]] = field(default_factory=dict)  # condition -> tag sensor -> within-song/min
    sensor_accuracy: dict[str, dict[str, float]] = field(default_factory=dict)  # ... -> settled, on proxy songs
    hops: list[dict[str, Any]] = field(default_factory=list)  # trainer.evaluate.tradeoff.hop_tradeoff
    sensor_params: dict[str, Any] = field(default_factory=dict)  # tag sensor -> TagSensorParams.to_dict(), tuned
    sensor_tuning: dict[str, Any] = field(default_factory=dict)  # tag sensor -> its tuning record


def evaluate_fold(test_clips: Mapping[str, tuple[str, FloatArray]], tune_clips: Mapping[str, tuple[str, FloatArray]],
                  spec: FeatureSpec, predict: Predict, *, severities: Sequence[str], seed: int,
                  cache_dir: Path | None, base_params: DecisionParams | None = None,
                  tune_conditions: Sequence[str] = (CLEAN, "typical"), setup: PlaylistSetup | None = None,
                  tune_setup: PlaylistSetup | None = None, keep_timeline: bool = False) -> FoldPlaylists:
    """Tune the rule on ``tune_clips``' playlists, then score it and BASELINE on ``test_clips``' playlists."""
    labels = spec.labels
    # Without a reject class a model cannot say not_music; the playlists then hold songs only.
    not_music = any(label in REJECT_LABELS for label in labels)
    t0 = time.perf_counter()
    tune_conds = [c for c in tune_conditions if c == CLEAN or c in severities] or [CLEAN]
    tune_runs = playlist_runs(tune_clips, spec, predict, conditions=tune_conds, seed=seed + 1, purpose="train",
                              cache_dir=cache_dir, setup=tune_setup or setup, not_music=not_music, name="tune")
    t1 = time.perf_counter()
    test_runs = playlist_runs(test_clips, spec, predict, conditions=[CLEAN, *severities], seed=seed, purpose="eval",
                              cache_dir=cache_dir, setup=setup, not_music=not_music, name="test")
    return judge(tune_runs, test_runs, labels, base_params or DecisionParams(), keep_timeline=keep_timeline,
                 seconds={"tune_playlists": t1 - t0, "test_playlists": time.perf_counter() - t1})


def judge(tune_runs: Sequence[PlaylistRun], test_runs: Sequence[PlaylistRun], labels: tuple[str, ...],
          base_params: DecisionParams, *, grid: Mapping[str, Sequence[Any]] | None = None,
          keep_timeline: bool = False, seconds: Mapping[str, float] | None = None) -> FoldPlaylists:
    """Tune the rule on ``tune_runs`` (see :func:`trainer.evaluate.tune_rule.tune_search` for ``grid``), then
    score it and BASELINE on ``test_runs``. A clip in both (a song, or a TV talk's music bed) is an error:
    the rule would be judged on music it was tuned on."""
    shared = song_clips(tune_runs) & song_clips(test_runs)
    if shared:
        raise ValueError(f"{len(shared)} clip(s) both tuned on and judged on, e.g. {sorted(shared)[0]}")
    t0 = time.perf_counter()
    result = tune_search([r.probs for r in tune_runs], [r.truth for r in tune_runs], labels, base_params,
                         levels=[r.rms_dbfs for r in tune_runs], conditions=[r.condition for r in tune_runs],
                         grid=grid)
    t1 = time.perf_counter()
    tuned_states = decide_runs(test_runs, labels, result.params)
    base_states = decide_runs(test_runs, labels, BASELINE)
    tune_conds = list(dict.fromkeys(r.condition for r in tune_runs))
    out = FoldPlaylists(
        tuned=result.params.to_dict(), metrics=score_runs(test_runs, tuned_states),
        baseline=score_runs(test_runs, base_states),
        tuning={"score": result.score, "metrics": result.metrics, "evaluated": result.evaluated,
                "conditions": tune_conds, **_counts(tune_runs)},
        counts=_counts(test_runs),
        seconds={**(seconds or {}), "tune_search": t1 - t0, "decide_score": time.perf_counter() - t1})
    out.seconds["total"] = sum(out.seconds.values())
    if keep_timeline:
        out.timeline = [{"playlist": r.plan.name, "condition": r.condition, "duration_s": r.plan.duration_s,
                         "segments": [(s.label, s.onset_s, s.offset_s) for s in r.truth.segments],
                         "times_s": r.truth.times_s.tolist(), "states": st}
                        for r, st in zip(test_runs, tuned_states, strict=True)]
    log.info("playlists: %s in %.0f s (search %.0f s)", out.counts, out.seconds["total"], out.seconds["tune_search"])
    return out


def song_clips(runs: Sequence[PlaylistRun]) -> set[str]:
    """Every clip whose audio plays in ``runs``: songs and TV talk's music beds."""
    return {clip for r in runs for seg in r.plan.segments
            for clip in ((seg.source,) if seg.kind == "song" else ()) + ((seg.bed,) if seg.bed else ())}


def _counts(runs: Sequence[PlaylistRun]) -> dict[str, Any]:
    plans = {r.plan.name: r.plan for r in runs}.values()
    segs = [s for p in plans for s in p.segments]
    return {"playlists": len(plans), "songs": sum(s.kind == "song" for s in segs),
            "not_music_segments": sum(s.kind == "not_music" for s in segs),
            "gaps": sum(s.entry == "gap" for s in segs), "crossfades": sum(s.entry == "crossfade" for s in segs),
            "minutes": round(sum(p.duration_s for p in plans) / 60, 1)}


def summarize_folds(per_fold: Sequence[Mapping[str, Mapping[str, float]]]) -> dict[str, Any]:
    """``{condition: {key: {mean, std, ...}}}`` (report.json nesting) from flat per-fold metrics."""
    conds = list(dict.fromkeys(c for f in per_fold for c in f))
    out: dict[str, Any] = {}
    for cond in conds:
        rows = [f[cond] for f in per_fold if cond in f]
        out[cond] = nest({k: mean_std([r[k] for r in rows]) for k in METRIC_KEYS})
    return out


def nested(flat_by_condition: Mapping[str, Mapping[str, float]]) -> dict[str, Any]:
    """``{condition: {key: value}}`` with ``switch_latency_s`` nested, for one model (``playlist.*``)."""
    return {c: nest(dict(m)) for c, m in flat_by_condition.items()}
