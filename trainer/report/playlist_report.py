"""The playlist evaluation inside ``genre-train``: the per-fold hook for ``compare``, the shipped model's run
in ``train``, the report.json sections, the report.md tables and the timeline PNGs.

Which clips: a fold's test playlists are made from its own test clips, its tuning playlists from its
*training* clips (never a test clip), through fresh "train"-purpose rooms (mild and typical) only. Why not
clean, and why not a held-out slice of the training clips: measured on one balanced-core fold (70 clips
trained, 10 held out as a slice, 20 test), window accuracy / mean top probability were, clean, 0.92/0.74
on seen clips against 0.69/0.55 on the slice and 0.55/0.55 on test clips (seen clips are overconfident),
but in a typical train room 0.40/0.42 seen, 0.50/0.41 slice, 0.45/0.39 test (a fresh room washes the
memorisation out). The rule tuned on seen-clip room playlists scored better on the test playlists than
the one tuned on the 10-clip slice (typical settled accuracy 0.69 vs 0.63), and a slice would take
~15 % of the training clips from every model. So: seen training clips, rooms only.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge.decide.params import BASELINE, DecisionParams
from edge.decide.states import genre_labels, is_reject
from trainer.evaluate.metrics import mean_std
from trainer.evaluate.playlist import Song, select_songs
from trainer.evaluate.playlist_eval import (
    CLEAN,
    FoldPlaylists,
    PlaylistSetup,
    Predict,
    decoded_clips,
    evaluate_fold,
    keras_predictor,
    nested,
    summarize_folds,
)
from trainer.export.tflite import TfliteRunner
from trainer.report.timeline import plot_timeline
from trainer.report.tradeoff_report import choose_hop, summarize_hops
from trainer.report.tradeoff_report import md_lines as tradeoff_md

TRADEOFF_PNG = "playlist_cv_tradeoff.png"

log = logging.getLogger(__name__)
TEST_SETUP = PlaylistSetup(max_per_genre=4)
TUNE_SETUP = PlaylistSetup(max_per_genre=2)
TUNE_CONDITIONS = ("mild", "typical")
PLAYLIST_KIND = "default_clip_split"  # the recipe the device ships; velardo folds get no playlists
_TABLE_KEYS = (("time_accuracy", "time acc", 100), ("settled_accuracy", "settled acc", 100),
               ("changes_per_min", "changes/min", 1), ("within_song_changes_per_min", "within-song/min", 1),
               ("switch_latency_s.median", "latency median s", 1), ("switch_latency_s.p90", "latency p90 s", 1),
               ("unknown_share_music", "music as no genre %", 100),
               ("genre_share_not_music", "not-music as genre %", 100))


def pick_clips(clips: Sequence[Any], setup: PlaylistSetup, seed: int) -> list[Any]:
    """The music clips a playlist set uses (the same seeded cap the builder applies), before decoding."""
    music = [c for c in clips if not is_reject(c.genre)]
    keep = {s.clip_id for s in select_songs([Song(c.clip_id, c.genre, 0) for c in music], setup.max_per_genre, seed)}
    return [c for c in music if c.clip_id in keep]


def run_playlists(test_clips: Sequence[Any], tune_clips: Sequence[Any], spec: Any, predict: Predict, *,
                  severities: Sequence[str], seed: int, cache_dir: Path | None,
                  keep_timeline: bool = False) -> FoldPlaylists:
    """Decode the picked clips and run :func:`trainer.evaluate.playlist_eval.evaluate_fold`."""
    sr = spec.sample_rate
    test = decoded_clips(pick_clips(test_clips, TEST_SETUP, seed), sr)
    tune = decoded_clips(pick_clips(tune_clips, TUNE_SETUP, seed + 1), sr)
    return evaluate_fold(test, tune, spec, predict, severities=severities, seed=seed, cache_dir=cache_dir,
                         base_params=DecisionParams(), setup=TEST_SETUP, tune_setup=TUNE_SETUP,
                         tune_conditions=TUNE_CONDITIONS, keep_timeline=keep_timeline)


def playlist_fold(ctx: Any, *, split: str, cache_dir: str | None) -> dict[str, Any]:
    """``compare``'s per-fold hook (trainer.runs.compare.FoldContext): playlists of the headline split's default
    recipe folds; every other run returns nothing."""
    if ctx.split != split or ctx.kind != PLAYLIST_KIND:
        return {}
    data = ctx.data
    result = run_playlists([data.clips[i] for i in ctx.test_idx], [data.clips[i] for i in ctx.train_idx],
                           ctx.trained.spec, keras_predictor(ctx.trained.model), severities=ctx.severities,
                           seed=ctx.seed, cache_dir=Path(cache_dir) if cache_dir else None, keep_timeline=True)
    return {"fold": ctx.fold, **dataclasses.asdict(result)}


def cv_sections(folds: Sequence[Mapping[str, Any]], max_hop_s: float | None = None) -> dict[str, Any]:
    """report.json sections from the hook's per-fold dicts (timelines left out; they go to the PNGs); the hop
    choice among hops up to ``max_hop_s`` (the model's window) when the folds measured hops."""
    folds = [f for f in folds if f]
    if not folds:
        return {}
    return _no_nan_doc({
        "playlist_cv": summarize_folds([f["metrics"] for f in folds]),
        "playlist_cv_baseline": summarize_folds([f["baseline"] for f in folds]),
        "playlist_cv_folds": [{k: v for k, v in f.items() if k not in ("timeline", "hops")} for f in folds],
        "playlist_setup": setup_notes(),
        **({"playlist_cv_sensors": _sensor_summary([f["sensors"] for f in folds])} if folds[0].get("sensors") else {}),
        **({"playlist_cv_sensors_accuracy": _sensor_summary([f["sensor_accuracy"] for f in folds])}
           if folds[0].get("sensor_accuracy") else {}),
        **(_hop_sections([f["hops"] for f in folds], max_hop_s) if folds[0].get("hops") and max_hop_s else {}),
    })


def _hop_sections(per_fold: Sequence[Sequence[Mapping[str, Any]]], max_hop_s: float) -> dict[str, Any]:
    hops = summarize_hops(per_fold)
    return {"playlist_cv_hops": hops, "playlist_cv_hop_choice": choose_hop(hops, max_hop_s)}


def _sensor_summary(per_fold: Sequence[Mapping[str, Mapping[str, float]]]) -> dict[str, Any]:
    """``{condition: {sensor: {mean, std, ...}}}`` of a tag sensor figure over folds."""
    conds = list(dict.fromkeys(c for f in per_fold for c in f))
    return {c: {name: mean_std([f[c][name] for f in per_fold if c in f]) for name in per_fold[0].get(c, {})}
            for c in conds}


def _no_nan_doc(doc: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _no_nan(v) for k, v in doc.items()}


def _no_nan(value: Any) -> Any:
    """NaN (a metric with nothing to measure, e.g. no not-music time) as null: report.json stays strict JSON."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, Mapping):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_no_nan(v) for v in value]
    return value


def shipped_section(result: FoldPlaylists, tuning: str | None = None) -> dict[str, Any]:
    """``playlist`` (tuned rule), ``playlist_baseline`` and the tuning record for the shipped model (``tuning``: see
    :func:`setup_notes`)."""
    return _no_nan_doc({"playlist": nested(result.metrics), "playlist_baseline": nested(result.baseline),
                    **({"playlist_sensors": result.sensors} if result.sensors else {}),
                    **({"playlist_sensors_accuracy": result.sensor_accuracy} if result.sensor_accuracy else {}),
                    **({"playlist_hops": summarize_hops([result.hops])} if result.hops else {}),
                    "playlist_shipped": {"decision": result.tuned, "tuning": result.tuning, "counts": result.counts,
                                         "seconds": result.seconds},
                    "playlist_setup": setup_notes(tuning)})


def setup_notes(tuning: str | None = None) -> dict[str, Any]:
    """How the report's playlists were made and judged; ``tuning`` says how the rule was tuned when it was not the CNN
    family's way (fresh train-purpose rooms of the fold's training clips)."""
    cfg = TEST_SETUP.config
    return {
        "hop_s": "the bundle's (model.json feature_spec.hop_s), genre-daemon's default",
        "test_clips_per_genre_max": TEST_SETUP.max_per_genre, "tune_clips_per_genre_max": TUNE_SETUP.max_per_genre,
        "playlist_s": TEST_SETUP.playlist_s, "gap_share": cfg.gap_share, "gap_s": list(cfg.gap_s),
        "crossfade_share": cfg.crossfade_share, "crossfade_s": list(cfg.crossfade_s),
        "songs_per_not_music": cfg.songs_per_not_music, "not_music_s": list(cfg.not_music_s),
        "truth": "what is audible at each hop (window end); gaps and crossfade overlaps are 'boundary' and not "
                 "scored; a segment's boundary is its onset; settled = 10 s after onset",
        "rooms": "degrade() over the whole playlist (one room per playlist), purpose eval for test playlists "
                 "and train for tuning playlists",
        "tuning": tuning or f"training clips of the fold in fresh train-purpose rooms ({', '.join(TUNE_CONDITIONS)}) "
                            "with train voices; test clips never (see trainer/report/playlist_report.py for why)",
        "not_music": "only for models with the reject class (compare's genre-task models have none)",
        "baseline": BASELINE.to_dict(),
    }


def _cell(value: Any, scale: float) -> str:
    if isinstance(value, Mapping):
        mean, std = value.get("mean"), value.get("std")
        if mean is None or mean != mean:
            return ""
        return f"{scale * mean:.1f} ± {scale * (std or 0.0):.1f}" if scale != 1 else f"{mean:.2f} ± {std or 0:.2f}"
    if value is None or value != value:
        return ""
    return f"{scale * value:.1f}" if scale != 1 else f"{value:.2f}"


def _get(d: Mapping[str, Any], dotted: str) -> Any:
    head, _, tail = dotted.partition(".")
    v = d.get(head)
    return v.get(tail) if tail and isinstance(v, Mapping) else v


def _table(rows: Sequence[tuple[str, str, Mapping[str, Any]]]) -> list[str]:
    head = "| condition | rule | " + " | ".join(h for _, h, _ in _TABLE_KEYS) + " |"
    out = [head, "|" + "---|" * (len(_TABLE_KEYS) + 2)]
    for cond, rule, m in rows:
        out.append(f"| {cond} | {rule} | " + " | ".join(_cell(_get(m, k), s) for k, _, s in _TABLE_KEYS) + " |")
    return out


def md_lines(doc: Mapping[str, Any]) -> list[str]:
    """report.md lines for the playlist sections present in ``doc`` (empty if none)."""
    out: list[str] = []
    how = str((doc.get("playlist_setup") or {}).get("tuning", "the rule tuned on training-clip playlists"))
    for key, base_key, title in (("playlist_cv", "playlist_cv_baseline", "CV folds, each fold's test clips"),
                                 ("playlist", "playlist_baseline", "the shipped model, its held-out clips")):
        # The PNGs (plot_timelines) are named after the section: playlist_cv_<condition>.png, playlist_<...>.png
        tuned, base = doc.get(key), doc.get(base_key) or {}
        if not tuned:
            continue
        rows = []
        for cond in tuned:
            rows.append((cond, "tuned", tuned[cond]))
            if cond in base:
                rows.append((cond, "baseline", base[cond]))
        out += ["", f"## What the house hears: playlists ({title})", "",
                "Published `genre` at every hop of the bundle (model.json hop_s), run through the daemon's decision "
                f"code (edge.decide); tuned = {how}; baseline = the first rule (5-window mean + 2-window "
                "hysteresis). Goals (typical room): settled ≥ 85 %, within-song ≤ 0.5/min, latency median ≤ 10 s, "
                "p90 ≤ 20 s, not-music as genre ≤ 2 %, music as no genre ≤ 10 %; clean settled ≥ 92 %; unseen room "
                "settled ≥ 75 %.", "", *_table(rows), "",
                " ".join(f"![{key} {cond}]({key}_{cond}.png)" for cond in tuned)]
        sensors = doc.get(f"{key}_sensors")
        if sensors:
            names = list(next(iter(sensors.values())))
            out += ["", "Tag sensors on the same playlists, state changes per minute of settled song time (goal "
                    "≤ 0.2):", "", "| condition | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
            out += [f"| {c} | " + " | ".join(_cell(v.get(n), 1) for n in names) + " |" for c, v in sensors.items()]
            accuracy = doc.get(f"{key}_sensors_accuracy")
            if accuracy:
                out += ["", "Their settled accuracy (%) on the proxy songs (the genres each sensor's head was fitted "
                        "on: trainer.tagger.tag_sensors.SENSORS):", "",
                        "| condition | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
                out += [f"| {c} | " + " | ".join(_cell(v.get(n), 100) for n in names) + " |"
                        for c, v in accuracy.items()]
        if key == "playlist_cv":
            params = [f.get("tuned", {}) for f in doc.get("playlist_cv_folds", [])]
            if params:
                out += ["", "Tuned per fold: " + "; ".join(
                    f"fold {f.get('fold', i)}: T={p.get('temperature')}, switch={p.get('switch_per_hop')}, "
                    f"min_conf={p.get('min_confidence')}, hyst={p.get('hysteresis_windows')}"
                    for i, (f, p) in enumerate(zip(doc["playlist_cv_folds"], params, strict=True)))]
            out += tradeoff_md(doc.get("playlist_cv_hops") or [], TRADEOFF_PNG, doc.get("playlist_cv_hop_choice"))
        else:
            shipped = doc.get("playlist_shipped", {}).get("decision")
            if shipped:
                out += ["", f"Shipped rule (model.json `decision`): `{shipped}`"]
    return out


def plot_timelines(out: Path, prefix: str, timelines: Sequence[Mapping[str, Any]], labels: Sequence[str],
                   title: str) -> list[Path]:
    """``<prefix>_<condition>.png`` per condition, one row per playlist (truth above, published below)."""
    by_cond: dict[str, list[Mapping[str, Any]]] = {}
    for row in timelines:
        by_cond.setdefault(str(row["condition"]), []).append(row)
    genres = list(genre_labels(tuple(labels)))
    paths = []
    for cond, rows in by_cond.items():
        named = [{**r, "playlist": f"{r.get('fold_name', '')}{r['playlist']}"} for r in rows]
        paths.append(plot_timeline(out / f"{prefix}_{cond}.png", named, genres, f"{title}: {cond}"))
    return paths


def cv_timelines(folds: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every fold's timeline rows, named by fold."""
    return [{**row, "fold_name": f"fold {f['fold']} "} for f in folds if f for row in f.get("timeline", [])]


def tflite_predictor(model_bytes: bytes) -> Predict:
    """Probabilities from normalised inputs through the exported model, as the device runs it."""
    runner = TfliteRunner(model_bytes)

    def predict(x: np.ndarray[Any, Any]) -> Any:
        return runner(x)

    return predict


__all__ = ["CLEAN", "cv_sections", "cv_timelines", "md_lines", "pick_clips", "playlist_fold", "plot_timelines",
           "run_playlists", "shipped_section", "tflite_predictor"]
