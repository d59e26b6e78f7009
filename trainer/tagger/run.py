"""The tagger family's ``genre-train`` commands: ``train`` (fit, evaluate and ship the bundle) and ``stream`` (the
published stream by artist-fold cross-validation in the shipped configuration, reject class included)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import UsageError
from edge.spec import musicnn_spec
from trainer.augment.unseen import UNSEEN_CONDITIONS
from trainer.data.dataset import DatasetError
from trainer.data.negatives import NEGATIVE_LABEL, negative_clips
from trainer.data.plan import cv_plan, eval_variants, train_plan
from trainer.model.recipes import Recipe
from trainer.report.playlist_report import (
    TRADEOFF_PNG,
    cv_sections,
    cv_timelines,
    plot_timelines,
    setup_notes,
    shipped_section,
)
from trainer.report.plots import plot_confusion
from trainer.report.render import update_report
from trainer.report.tradeoff_report import plot_tradeoff
from trainer.runs.fit import decodable, find_clips, train_copies
from trainer.runs.setup import clips_section, groups_of, save_plan, setup, skipped_rows
from trainer.tagger.embed import InputEmbedder, embed_windows
from trainer.tagger.export import embedding_model
from trainer.tagger.fit import TaggerData
from trainer.tagger.heads import fit_head
from trainer.tagger.ship import ship_tagger
from trainer.tagger.stream import group_of, stream_fold, tuning_note

log = logging.getLogger("genre-train")


def tagger_data(clips: Any, skipped: Any, recipe: Recipe, cache: Path, data_dir: Path,
                workers: int | None) -> tuple[list[Any], Any, list[str], str, Any]:
    """Decodable clips, the skipped ones, their artist groups, the protocol, the tagger's spec."""
    labels = tuple(sorted({c.genre for c in clips}))
    spec = musicnn_spec(labels, 1.0 if recipe.hop_s is None else recipe.hop_s)
    clips, skipped, _ = decodable(clips, skipped, spec, cache, workers)
    groups, protocol = groups_of(data_dir, clips)
    return clips, skipped, groups, protocol, spec


def embedded(clips: Any, variants: Any, spec: Any, cache: Path, workers: int | None) -> TaggerData:
    """Every clip's planned copies through the embedding model (cached), as the head's data."""
    emb = embed_windows(clips, variants, spec, embedding_model(cache), cache, hop_frames=spec.frames_per_window,
                        workers=workers)
    if emb.failed:
        raise DatasetError(f"the tagger could not read {len(emb.failed)} clips: {next(iter(emb.failed.values()))}")
    log.info("tagger embeddings for %d clips: %d copies computed, %d cached", len(clips), emb.computed, emb.cached)
    y = np.array([spec.labels.index(c.genre) for c in clips], dtype=np.int64)
    return TaggerData(list(clips), spec.labels, y, emb, spec)


def train_tagger(args: argparse.Namespace, command: str, recipe: Recipe, clips: Any, skipped: Any, cache: Path,
                  data_dir: Path, severities: tuple[str, ...], started: float) -> int:
    """``train`` for the tagger family: the same plan and report, embeddings instead of MFCC features."""
    clips, skipped, groups, protocol, spec = tagger_data(clips, skipped, recipe, cache, data_dir, args.workers)
    labels = spec.labels
    copies = train_copies(recipe, severities)
    conditions = (*severities, *UNSEEN_CONDITIONS) if severities else ()
    plan = train_plan([c.clip_id for c in clips], [c.genre for c in clips], groups, protocol,
                      test_fraction=args.test_fraction, seed=args.seed, train_copies=copies,
                      test_copies=eval_variants(conditions), skipped=skipped_rows(skipped))
    save_plan(args, plan, protocol)
    data = embedded(clips, plan.variants, spec, cache, args.workers)
    log.info("tagger data ready in %.0f s; held-out split by %s", time.perf_counter() - started, protocol)
    shipped = ship_tagger(recipe, data, args.out, plan=plan, copies=copies, conditions=conditions,
                          severities=severities, seed=args.seed, command=command, cache_dir=cache,
                          false_genre_clips=6 if args.quick else 24, ablations=not args.no_ablations)
    shipped["wall_seconds"] = time.perf_counter() - started
    playlist_run = shipped.pop("playlist_run")
    ablations = shipped.pop("tagger_ablations")
    level = shipped.pop("level_check")  # the report's own section, as `genre-train level` writes it
    plot_confusion(args.out / "confusion.png", shipped["confusion_clip_int8"], labels,
                   f"held-out clips, shipped tagger ({shipped['test_clips']} clips)")
    plot_timelines(args.out, "playlist", playlist_run.timeline, labels,
                   "shipped tagger, held-out clips, its tuned rule: truth above, published below")
    section = clips_section(data_dir, clips, labels, data.counts(), skipped, data.emb.computed, data.emb.cached)
    # Without --no-ablations' fits the report keeps the previous rows (the same split and seed give the same ones).
    update_report(args.out, {**shipped_section(playlist_run, tuning_note()), "data": section, "shipped": shipped,
                             "level_check": level, **({"tagger_ablations": ablations} if ablations else {}),
                             "recipe_definitions": {recipe.name: recipe.to_dict()}})
    log.info("bundle written to %s: clip acc %.3f, macro %.3f, %d bytes, %.0f s", args.out,
             shipped["clip_accuracy_int8"], shipped["clip_macro_accuracy_int8"], shipped["tflite_bytes"],
             shipped["wall_seconds"])
    return 0


def with_negatives(clips: list[Any], recipe: Recipe, cache: Path, data_dir: Path, seed: int) -> list[Any]:
    """The music clips plus the recipe's reject-class clips."""
    if not recipe.negatives:
        return clips
    if any(c.genre == NEGATIVE_LABEL for c in clips):
        raise UsageError(f"{data_dir}: genre {NEGATIVE_LABEL!r} is reserved for the reject class")
    return [*clips, *negative_clips(cache / "negatives", recipe.negatives, seed=seed)]


def stream_cv(args: argparse.Namespace, command: str, recipe: Recipe) -> int:
    """``genre-train stream``: the shipped recipe (reject class included) on artist folds; per fold, the rule tuned
    on cross-fitted playlists of the fold's training clips and judged on playlists of its test clips."""
    started = time.perf_counter()
    data_dir, cache, severities = setup(args)
    clips, skipped = find_clips(data_dir, args.quick)
    clips = with_negatives(clips, recipe, cache, data_dir, args.seed)
    clips, skipped, groups, protocol, spec = tagger_data(clips, skipped, recipe, cache, data_dir, args.workers)
    copies = train_copies(recipe, severities)
    ids = [c.clip_id for c in clips]
    plan = cv_plan(ids, [c.genre for c in clips], groups, protocol, n_folds=2 if args.quick else args.folds,
                   seed=args.seed, train_copies=copies, test_copies=[], skipped=skipped_rows(skipped), by_clip=False)
    plan.save(args.out, name="split_stream.json")
    data = embedded(clips, plan.variants, spec, cache, args.workers)
    split = plan.split(protocol)
    clip_groups = group_of(data, plan.clip_ids, plan.groups)
    folds: list[dict[str, Any]] = []
    with InputEmbedder(embedding_model(cache), cache, args.workers) as embed:
        for f in split.folds:
            train_idx, test_idx = split.indices(data.clip_ids, f)
            head = fit_head(recipe, data, train_idx, copies, args.seed * 1000 + f)
            result = stream_fold(recipe, data, train_idx, test_idx, head, clip_groups, copies, severities=severities,
                                 embed=embed, seed=args.seed + f, cache_dir=cache, keep_timeline=True)
            folds.append({"fold": f, **dataclasses.asdict(result)})
            log.info("stream fold %d: typical settled %.3f, within-song %.2f/min (%.0f s)", f,
                     result.metrics.get("typical", result.metrics["clean"])["settled_accuracy"],
                     result.metrics.get("typical", result.metrics["clean"])["within_song_changes_per_min"],
                     result.seconds["total"])
    sections = cv_sections(folds, max_hop_s=spec.window_s)
    sections["playlist_setup"] = setup_notes(tuning_note())
    sections["playlist_cv_run"] = {"recipe": recipe.name, "folds": split.n_folds, "protocol": protocol,
                                   "clips": len(clips), "counts": data.counts(), "command": command,
                                   "seconds": time.perf_counter() - started,
                                   "why": "the shipped recipe with its reject class, so every fold's playlists "
                                          "carry speech, TV talk and household noise between songs"}
    plot_timelines(args.out, "playlist_cv", cv_timelines(folds), data.labels,
                   f"CV by {protocol}, shipped recipe ({recipe.name}), tuned rule: truth above, published below")
    if sections.get("playlist_cv_hops"):
        plot_tradeoff(args.out / TRADEOFF_PNG, sections["playlist_cv_hops"])
    update_report(args.out, sections)
    log.info("stream CV written to %s in %.1f min", args.out, (time.perf_counter() - started) / 60)
    return 0
