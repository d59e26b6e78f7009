"""``genre-train``: train and ship the default model, compare recipes by cross-validation, or ablate one.

Exit codes (edge.errors): 0 ok, 2 usage, 65 bad data (no audio, one genre, bad manifest),
70 internal failure such as an int8 model that disagrees with its float original.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import logging
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edge.errors import EX_USAGE, GenreError, UsageError
from edge.spec import musicnn_spec
from trainer.augment.unseen import UNSEEN_CONDITIONS
from trainer.data.dataset import DatasetError, default_cache_dir
from trainer.data.groups import complete_genres, read_fault_filtered
from trainer.data.plan import CLEAN, CLIP, CORE, FAULT_FILTERED, cv_plan, eval_variants, train_plan
from trainer.data.split import segment_folds
from trainer.model.recipes import RECIPES, Recipe, get_recipe
from trainer.report.playlist_report import cv_sections, cv_timelines, playlist_fold, plot_timelines, shipped_section
from trainer.report.plots import plot_confusion, plot_curves, plot_robustness
from trainer.report.render import PUBLISHED_FAULT_FILTERED, update_report
from trainer.runs import ablate
from trainer.runs.compare import RUN_KINDS, compare, segment_split_fold, velardo_segments
from trainer.runs.fit import base_spec, decodable, find_clips, load_data, train_copies
from trainer.runs.level import level_command
from trainer.runs.setup import attach_teacher, data_section, groups_of, save_plan, setup, skipped_rows
from trainer.runs.ship import ship
from trainer.tagger.cv import tagger_folds
from trainer.tagger.embed import embed_windows
from trainer.tagger.export import embedding_model
from trainer.tagger.fit import TaggerData
from trainer.tagger.run import stream_cv, train_tagger, with_negatives

log = logging.getLogger("genre-train")


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data", type=Path, default=None,
                        help="GTZAN-layout folder or one with manifest.csv (default ../shared/gtzan)")
    common.add_argument("--out", type=Path, required=True, help="output folder (bundle and/or report)")
    common.add_argument("--seed", type=int, default=0, help="fixes splits, sampling, init and TF ops")
    common.add_argument("--threads", type=int, default=None, help="TF intra-op threads (1 = bit-reproducible)")
    common.add_argument("--workers", type=int, default=None, help="feature-extraction processes (default: cores)")
    common.add_argument("--cache-dir", type=Path, default=None, help="feature cache (default ~/.cache/genre-pi)")
    common.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    common.add_argument("--quick", action="store_true",
                        help="smoke test: 12 clips, 2 epochs, 1 room copy, 3 + 6 non-music clips")
    common.add_argument("--no-degrade", action="store_true",
                        help="skip room augmentation and the robustness suite (trainer.augment.degrade)")
    common.add_argument("-v", "--verbose", action="store_true")
    parser = argparse.ArgumentParser(prog="genre-train", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", parents=[common], help="train one recipe, export its bundle + report")
    train.add_argument("--recipe", choices=sorted(RECIPES), default="tagger",
                       help="tagger (ships: the pretrained musicnn + a gated genre head), tagger_room, tagger_linear, "
                            "or a small MFCC CNN for a weaker board: distilled (the lite bundle), default, velardo")
    train.add_argument("--split", choices=("clip", "segment"), default="clip",
                       help="'segment' is LEAKY and only reproduces the baseline's numbers (no bundle)")
    train.add_argument("--test-fraction", type=float, default=0.2,
                       help="held-out clips per genre (0..1), whole artist groups where the data has artists")
    train.add_argument("--save-float", action="store_true", help="also write model_float.tflite")
    train.add_argument("--no-ablations", action="store_true",
                       help="tagger: skip the five head ablation fits (the report keeps its previous rows)")
    train.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                       help="change a recipe field (repeatable), e.g. teacher_weight=0.9, as in ablate")
    compare = sub.add_parser("compare", parents=[common],
                             help="k-fold CV by artist (and by clip, fault-filtered split, core): velardo vs default")
    compare.add_argument("--folds", type=int, default=5)
    compare.add_argument("--no-core", action="store_true", help="skip the balanced-core comparison")
    compare.add_argument("--clip-split", choices=("default", "all", "off"), default="default",
                         help="which recipes also run on folds by clip beside the artist folds (default: the "
                              "default recipe only, to stay in the time budget)")
    compare.add_argument("--no-leaky", action="store_true",
                         help="skip the leaky segment-split baseline (5 trainings)")
    compare.add_argument("--no-fault-filtered", action="store_true",
                         help="skip the fault-filtered 4-genre table")
    compare.add_argument("--no-playlists", action="store_true",
                         help="skip the playlist evaluation of the published stream (issue 11; ~2-3 min per fold)")
    compare.add_argument("--jobs", type=int, default=2, help="folds trained in parallel processes (1 TF thread each)")
    compare.add_argument("--no-tagger", action="store_true",
                         help="skip the tagger rows (tagger_linear, tagger_room, tagger)")
    compare.add_argument("--tagger-c", type=float, nargs="+", default=[], metavar="C",
                         help="also the tagger recipe with its head's inverse L2 strength set to each C (rows "
                              "tagger_C<C>): the L2 sweep, on the same folds")
    compare.add_argument("--no-unseen", action="store_true",
                         help="score the training chain's severities only, not the unseen room family")
    stream = sub.add_parser("stream", parents=[common],
                            help="the published stream by k-fold CV by artist in the shipped configuration (the "
                                 "tagger with its reject class): the rule tuned out of sample per fold, playlists "
                                 "with speech and TV talk, clean and in every room")
    stream.add_argument("--recipe", choices=sorted(k for k, r in RECIPES.items() if r.family == "tagger"),
                        default="tagger")
    stream.add_argument("--folds", type=int, default=3)
    stream.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                        help="change a recipe field (repeatable), e.g. hop_s=0.75: the grid the playlists are "
                             "decided on (the hop table then covers its multiples up to the window)")
    level = sub.add_parser("level", parents=[common],
                           help="a bundle (--out) on its own held-out music clips played at -10 to -50 dBFS, "
                                "through the device's code; merged into its report (every tagger train runs it too)")
    level.add_argument("--max-per-genre", type=int, default=None, metavar="N",
                       help="only the first N held-out clips of each genre (a quick look; default all)")
    ablate = sub.add_parser("ablate", parents=[common],
                            help="k-fold CV by artist of the default recipe with changed knobs, clean vs one severity")
    ablate.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                        help="a recipe field to change (repeatable), e.g. cvn=true, aug_copies=8, high_hz=5500")
    ablate.add_argument("--name", default=None, help="row name in report.json's ablations (default: the settings)")
    ablate.add_argument("--severity", default="typical", help="the room condition to score besides clean")
    ablate.add_argument("--folds", type=int, default=5)
    ablate.add_argument("--jobs", type=int, default=2, help="folds trained in parallel processes (1 TF thread each)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        args = _parser().parse_args(args_list)
    except SystemExit as exc:
        return int(exc.code or 0)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("tensorflow", "absl", "h5py", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    command = "genre-train " + shlex.join(args_list)
    try:
        if args.command == "train":
            return _train(args, command)
        if args.command == "ablate":
            return _ablate(args, command)
        if args.command == "level":
            return level_command(args, command)
        if args.command == "stream":
            return stream_cv(args, command, _with_settings(_recipe(args.recipe, args), args.settings))
        return _compare(args, command)
    except GenreError as exc:
        print(f"genre-train: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except ValueError as exc:
        print(f"genre-train: error: {exc}", file=sys.stderr)
        return EX_USAGE


def _recipe(name: str, args: argparse.Namespace) -> Recipe:
    if args.quick:
        return get_recipe(name, epochs=args.epochs or 2, aug_copies=min(RECIPES[name].aug_copies, 1),
                          noise_copies=min(RECIPES[name].noise_copies, 1),
                          reverb_copies=min(RECIPES[name].reverb_copies, 1), crops_per_clip=6,
                          negatives=min(RECIPES[name].negatives, 3) or None)
    return get_recipe(name, epochs=args.epochs)


def _with_settings(recipe: Recipe, settings: Sequence[str]) -> Recipe:
    """``recipe`` with ``--set KEY=VALUE`` overrides (train, stream), checked before any work."""
    return dataclasses.replace(recipe, **ablate.parse_settings(settings, recipe)) if settings else recipe


def _train(args: argparse.Namespace, command: str) -> int:
    started = time.perf_counter()
    recipe = _with_settings(_recipe(args.recipe, args), args.settings)  # a bad setting: nothing written
    data_dir, cache, severities = setup(args)
    clips, skipped = find_clips(data_dir, args.quick)
    if args.split == "clip":
        clips = with_negatives(clips, recipe, cache, data_dir, args.seed)
    labels = tuple(sorted({c.genre for c in clips}))
    if args.split == "segment":
        return _train_leaky(args, command, recipe, clips, skipped, cache, data_dir)
    if recipe.family == "tagger":
        return train_tagger(args, command, recipe, clips, skipped, cache, data_dir, severities, started)
    spec = base_spec(labels, recipe)
    # Decode first, then plan over what decodes: one plan decides the split and every clip's feature copies
    # (room copies for training clips, evaluation rooms for test clips), and ship() trains on that same plan.
    clips, skipped, probed = decodable(clips, skipped, spec, cache, args.workers)
    groups, protocol = groups_of(data_dir, clips)
    plan = train_plan([c.clip_id for c in clips], [c.genre for c in clips], groups, protocol,
                      test_fraction=args.test_fraction, seed=args.seed, train_copies=train_copies(recipe, severities),
                      test_copies=eval_variants(severities), skipped=skipped_rows(skipped))
    save_plan(args, plan, protocol)
    data = load_data(clips, skipped, spec, plan.variants, cache, args.workers, probed=probed)
    teacher_info = attach_teacher(data, plan, recipe, cache, args.workers)
    log.info("features ready for %d clips (%d computed, %d cached) in %.0f s; held-out split by %s", len(data.clips),
             data.store.computed, data.store.cache_hits, time.perf_counter() - started, protocol)

    shipped = ship(recipe, data, args.out, plan=plan, seed=args.seed, threads=args.threads, severities=severities,
                   command=command, save_float=args.save_float, cache_dir=cache,
                   false_genre_clips=6 if args.quick else 24)
    shipped["wall_seconds"] = time.perf_counter() - started
    if teacher_info:
        shipped["teacher"] = {**teacher_info, **shipped.get("teacher", {})}
    playlist_run = shipped.pop("playlist_run", None)
    history = shipped.pop("history")
    plot_confusion(args.out / "confusion.png", shipped["confusion_clip_int8"], data.labels,
                   f"held-out clips, int8 ({shipped['test_clips']} clips)")
    plot_curves(args.out / "curves.png", history, f"recipe {recipe.name}")
    shipped["history"] = history
    playlist_sections: dict[str, Any] = {}
    if playlist_run is not None:
        playlist_sections = shipped_section(playlist_run)
        plot_timelines(args.out, "playlist", playlist_run.timeline, data.labels,
                       "shipped model (int8), held-out clips, its tuned rule: truth above, published below")
    update_report(args.out, {**playlist_sections, "data": data_section(data_dir, data), "shipped": shipped,
                             "recipe_definitions": {recipe.name: recipe.to_dict()}})
    for s in data.skipped:
        log.warning("skipped %s: %s", s.clip_id, s.reason)
    log.info("bundle written to %s: clip acc int8 %.3f (float %.3f), macro %.3f, %d bytes, %.0f s", args.out,
             shipped["clip_accuracy_int8"], shipped["clip_accuracy_float"], shipped["clip_macro_accuracy_int8"],
             shipped["tflite_bytes"], shipped["wall_seconds"])
    return 0


def _train_leaky(args: argparse.Namespace, command: str, recipe: Recipe, clips: Any, skipped: Any, cache: Path,
                 data_dir: Path) -> int:
    log.warning("--split segment is LEAKY: segments of one clip land on both sides; no bundle is written")
    spec = base_spec(tuple(sorted({c.genre for c in clips})), recipe)
    clips, skipped, probed = decodable(clips, skipped, spec, cache, args.workers)
    data = load_data(clips, skipped, spec, (CLEAN,), cache, args.workers, probed=probed)
    segments, owners = velardo_segments(data, base_spec(data.labels, recipe))
    folds = segment_folds(segments.shape[0], 5, args.seed)
    result = segment_split_fold(recipe, data, folds, 0, owners, segments, seed=args.seed, threads=args.threads)
    update_report(args.out, {"data": data_section(data_dir, data),
                             "leaky_segment_split": {"LEAKY": True, "recipe": recipe.name, "command": command,
                                                     **result.scores["clean"].summary()}})
    return 0


def _cv_setup(args: argparse.Namespace, recipes: dict[str, Recipe], spec_recipe: Recipe,
              severities: Sequence[str], *, extras: bool,
              conditions: Sequence[str] | None = None) -> tuple[Path, Any, Any, str]:
    """Find, decode and plan for ``compare``/``ablate``: (data folder, Data, RunPlan, protocol).

    ``extras`` adds the comparison's side splits: by clip, fault-filtered and the balanced core. Test clips get a
    copy per evaluation condition (``conditions``, default the severities).
    """
    data_dir, cache, _ = setup(args)
    clips, skipped = find_clips(data_dir, args.quick)
    spec = base_spec(tuple(sorted({c.genre for c in clips})), spec_recipe)
    clips, skipped, probed = decodable(clips, skipped, spec, cache, args.workers)
    groups, protocol = groups_of(data_dir, clips)
    ids = [c.clip_id for c in clips]
    ff = read_fault_filtered(data_dir) if extras and not args.no_fault_filtered else None
    ff_genres = complete_genres(ff, ids)[0] if ff else []
    copies = sorted({v for r in recipes.values() for v in train_copies(r, severities)})
    plan = cv_plan(ids, [c.genre for c in clips], groups, protocol, n_folds=2 if args.quick else args.folds,
                   seed=args.seed, train_copies=copies,
                   test_copies=eval_variants(severities if conditions is None else conditions),
                   skipped=skipped_rows(skipped), by_clip=extras and args.clip_split != "off", fault_filtered=ff,
                   fault_genres=ff_genres, core=[c.core for c in clips] if extras and not args.no_core else None)
    # The bundle's split.json is the shipped model's; compare and ablate keep their plans beside it.
    plan.save(args.out, name=f"split_{args.command}.json")
    data = load_data(clips, skipped, spec, plan.variants, cache, args.workers, probed=probed)
    for recipe in recipes.values():
        if recipe.teacher_weight:
            attach_teacher(data, plan, recipe, cache, args.workers)
            break
    return data_dir, data, plan, protocol


def _fold_table(data: Any, part: dict[str, int], n_folds: int) -> dict[str, list[int]]:
    """Test clips per genre per fold: how balanced a grouped split came out."""
    table = {g: [0] * n_folds for g in data.labels}
    for c in data.clips:
        if c.clip_id in part:
            table[c.genre][part[c.clip_id]] += 1
    return table


def _compare(args: argparse.Namespace, command: str) -> int:
    started = time.perf_counter()
    bad = [c for c in args.tagger_c if not 0 < c < 1e6]
    if bad:
        raise UsageError(f"--tagger-c {bad[0]:g}: C must be in (0, 1e6)")
    _, _, severities = setup(args)
    # The comparison is about the genre task: no reject class, so every recipe sees the same clips.
    every = {name: dataclasses.replace(_recipe(name, args), negatives=0) for name in RECIPES}
    recipes = {k: r for k, r in every.items() if r.family == "cnn"}
    taggers = {k: r for k, r in every.items() if r.family == "tagger" and not args.no_tagger}
    for c in args.tagger_c:
        taggers[f"tagger_C{c:g}"] = dataclasses.replace(every["tagger"], name=f"tagger_C{c:g}", head_c=c,
                                                        notes=f"the tagger recipe with C {c:g} (an L2 sweep row)")
    conditions = (*severities, *UNSEEN_CONDITIONS) if severities and not args.no_unseen else severities
    data_dir, data, plan, protocol = _cv_setup(args, recipes, recipes["default"], severities, extras=True,
                                               conditions=conditions)
    log.info("features ready (%d computed, %d cached) in %.0f s; headline folds by %s", data.store.computed,
             data.store.cache_hits, time.perf_counter() - started, protocol)
    clip_kinds = {"default": ("default_clip_split",), "all": RUN_KINDS[1:], "off": ()}[args.clip_split]
    runs: dict[str, tuple[str, ...]] = {protocol: RUN_KINDS[1:] if args.no_leaky else RUN_KINDS}
    if protocol != CLIP and clip_kinds:
        runs[CLIP] = clip_kinds
    if FAULT_FILTERED in plan.splits:
        runs[FAULT_FILTERED] = RUN_KINDS[1:]
    if CORE in plan.splits:
        runs[CORE] = RUN_KINDS[1:]
    on_fold = None
    if not args.no_playlists:
        # Playlists for the headline split's default-recipe folds only, run in the fold's worker beside its model.
        on_fold = functools.partial(playlist_fold, split=protocol, cache_dir=str(args.cache_dir or default_cache_dir()))
    full = compare(data, recipes, plan=plan, runs=runs, seed=args.seed, threads=args.threads, severities=conditions,
                   jobs=args.jobs, on_fold=on_fold)
    head = full[protocol]
    if taggers:
        # The same folds, every clip's copies embedded by the tagger (cached), a head fitted per fold.
        spec = musicnn_spec(data.labels, next(iter(taggers.values())).hop_s or 1.0)
        copies = sorted({v for r in taggers.values() for v in train_copies(r, severities)})
        wanted = {c: [*copies, *eval_variants(conditions)] for c in data.clip_ids}
        emb = embed_windows(data.clips, wanted, spec, embedding_model(args.cache_dir or default_cache_dir()),
                            args.cache_dir or default_cache_dir(), hop_frames=spec.frames_per_window,
                            workers=args.workers)
        if emb.failed:
            raise DatasetError(f"the tagger could not read {len(emb.failed)} clips")
        rows = tagger_folds(taggers, TaggerData(list(data.clips), data.labels, data.y, emb, spec),
                            plan.split(protocol), conditions, severities, args.seed)
        head["recipes"].update(rows["recipes"])
        head["robustness"].update(rows["robustness"])
    folds = plan.split(protocol).n_folds
    # "data" belongs to the shipped model (train adds the reject class's clips); the comparison keeps its own.
    sections: dict[str, Any] = {"data_compare": data_section(data_dir, data), "protocol": protocol,
                                "recipes": head["recipes"], "robustness": head["robustness"],
                                "recipe_definitions": {k: r.to_dict() for k, r in {**recipes, **taggers}.items()}}
    if CLIP in runs and protocol != CLIP:
        sections["recipes_by_clip"] = full[CLIP]["recipes"]
        sections["robustness_by_clip"] = full[CLIP]["robustness"]
    if FAULT_FILTERED in runs:
        ff_split = plan.split(FAULT_FILTERED)
        lists = read_fault_filtered(data_dir)
        assert lists is not None
        sections["fault_filtered"] = {
            "genres": list(ff_split.genres), "recipes": full[FAULT_FILTERED]["recipes"],
            "robustness": full[FAULT_FILTERED]["robustness"],
            "coverage": complete_genres(lists, data.clip_ids)[1],
            "train_clips": sum(p == 0 for p in ff_split.part.values()),
            "test_clips": sum(p == 1 for p in ff_split.part.values()),
            "published_10_genre": PUBLISHED_FAULT_FILTERED,
            "caveat": f"{len(ff_split.genres)} genres, not 10: chance is {100 / len(ff_split.genres):.0f} %, not "
                      "10 %, and the thin genres are left out; the published figures are 10-genre accuracy on the "
                      "complete split, so the two are not directly comparable"}
    if CORE in runs:
        sections["recipes_core"] = full[CORE]["recipes"]
        sections["robustness_core"] = full[CORE]["robustness"]
    sections["cv"] = {"folds": folds, "seed": args.seed, "protocol": protocol,
                      "by": ("artist groups (manifest artist, Foleis groups, suspected repeats), stratified by genre"
                             if protocol != CLIP else "clip, stratified (no artist metadata in the data folder)"),
                      "fold_of_clip": head["fold_of_clip"], "fold_sizes": head["fold_sizes"],
                      "genre_per_fold": _fold_table(data, head["fold_of_clip"], folds),
                      "clip_split_kinds": list(runs.get(CLIP, ())) if protocol != CLIP else list(RUN_KINDS[1:]),
                      "runs": {k: list(v) for k, v in runs.items()},
                      "command": command, "seconds": time.perf_counter() - started}
    if head["robustness"] and severities:
        plot_robustness(args.out / "robustness.png", head["robustness"], f"{folds}-fold CV by {protocol}, all clips")
    playlist_folds = full["extras"].get(protocol, {}).get("default_clip_split", [])
    if playlist_folds:
        sections.update(cv_sections(playlist_folds))
        plot_timelines(args.out, "playlist_cv", cv_timelines(playlist_folds), data.labels,
                       f"CV by {protocol}, default recipe, tuned rule: truth above, published below")
    update_report(args.out, sections)
    log.info("comparison written to %s in %.1f min", args.out, (time.perf_counter() - started) / 60)
    return 0


def _ablate(args: argparse.Namespace, command: str) -> int:
    started = time.perf_counter()
    _, _, severities = setup(args)
    if args.severity not in severities:
        raise UsageError(f"--severity {args.severity!r}: the room chain offers {', '.join(severities) or 'nothing'}")
    base = dataclasses.replace(_recipe("default", args), negatives=0)  # the genre task, as compare measures it
    settings = ablate.parse_settings(args.settings, base)
    recipe = dataclasses.replace(base, **settings)
    _, data, plan, protocol = _cv_setup(args, {"default": recipe}, recipe, [args.severity], extras=False)
    folds = plan.split(protocol).n_folds
    clean, degraded = ablate.run(data, recipe, _recipe("velardo", args), plan=plan, split=protocol,
                                 severity=args.severity, seed=args.seed, jobs=args.jobs)
    row = {**ablate.summarize(clean, degraded, args.severity, settings), "protocol": protocol, "command": command,
           "seconds": time.perf_counter() - started}
    name = args.name or (", ".join(args.settings) or "default")
    update_report(args.out, {"ablations": {name: row}}, merge=("ablations",))
    log.info("%s: clean %.3f, %s %.3f, loss %.3f ± %.3f (%d folds by %s, %.1f min)", name, row["clean"]["mean"],
             args.severity, row[args.severity]["mean"], row["loss"]["mean"], row["loss"]["std"], folds, protocol,
             row["seconds"] / 60)
    return 0
