"""``genre-train``: train and ship the default model, compare recipes by cross-validation, or ablate one.

Exit codes (edge.errors): 0 ok, 2 usage, 65 bad data (no audio, one genre, bad manifest),
70 internal failure such as an int8 model that disagrees with its float original.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edge.errors import EX_USAGE, GenreError, UsageError
from trainer.dataset import default_cache_dir
from trainer.recipes import RECIPES, Recipe, get_recipe

log = logging.getLogger("genre-train")
REPO = Path(__file__).resolve().parent.parent


def default_data_dir() -> Path:
    """``../shared/gtzan`` next to the working directory, else next to the repository."""
    here = Path("../shared/gtzan")
    return here if here.is_dir() else REPO.parent / "shared" / "gtzan"


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
    common.add_argument("--quick", action="store_true", help="smoke test: 12 clips, 2 epochs")
    common.add_argument("--no-degrade", action="store_true",
                        help="skip room augmentation and the robustness suite (trainer.degrade)")
    common.add_argument("-v", "--verbose", action="store_true")
    parser = argparse.ArgumentParser(prog="genre-train", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", parents=[common], help="train one recipe, export int8 bundle + report")
    train.add_argument("--recipe", choices=sorted(RECIPES), default="default")
    train.add_argument("--split", choices=("clip", "segment"), default="clip",
                       help="'segment' is LEAKY and only reproduces the baseline's numbers (no bundle)")
    train.add_argument("--test-fraction", type=float, default=0.2, help="held-out clips per genre (0..1)")
    train.add_argument("--save-float", action="store_true", help="also write model_float.tflite")
    compare = sub.add_parser("compare", parents=[common], help="k-fold CV by clip: velardo vs default")
    compare.add_argument("--folds", type=int, default=5)
    compare.add_argument("--no-core", action="store_true", help="skip the balanced-core comparison")
    compare.add_argument("--jobs", type=int, default=2, help="folds trained in parallel processes (1 TF thread each)")
    ablate = sub.add_parser("ablate", parents=[common],
                            help="k-fold CV of the default recipe with changed knobs, clean vs one severity")
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
                          crops_per_clip=6, negatives=min(RECIPES[name].negatives, 3) or None)
    return get_recipe(name, epochs=args.epochs)


def _setup(args: argparse.Namespace) -> tuple[Path, Path, tuple[str, ...]]:
    from trainer.pipeline import severities_available

    data = args.data or default_data_dir()
    if not data.exists():
        raise UsageError(f"{data}: data folder does not exist (pass --data)")
    cache = args.cache_dir or default_cache_dir()
    args.out.mkdir(parents=True, exist_ok=True)
    severities = () if args.no_degrade else severities_available()
    return data, cache, severities


def _data_section(data_dir: Path, data: Any) -> dict[str, Any]:
    return {"root": str(data_dir), "clips": len(data.clips), "counts": data.counts(),
            "core_counts": {g: sum(1 for c in data.clips if c.core and c.genre == g) for g in data.labels},
            "skipped": [{"clip_id": s.clip_id, "path": s.path, "reason": s.reason} for s in data.skipped],
            "skipped_count": len(data.skipped),
            "features_computed": data.store.computed, "features_cached": data.store.cache_hits}


def _train(args: argparse.Namespace, command: str) -> int:
    from trainer.pipeline import aug_variants, eval_variants, find_clips, load_data
    from trainer.pipeline import base_spec as make_spec
    from trainer.report import plot_confusion, plot_curves, update_report
    from trainer.split import holdout_parts

    started = time.perf_counter()
    data_dir, cache, severities = _setup(args)
    recipe = _recipe(args.recipe, args)
    clips, skipped = find_clips(data_dir, args.quick)
    if recipe.negatives and args.split == "clip":
        from trainer.negatives import NEGATIVE_LABEL, negative_clips

        if any(c.genre == NEGATIVE_LABEL for c in clips):
            raise UsageError(f"{data_dir}: genre {NEGATIVE_LABEL!r} is reserved for the reject class")
        clips = [*clips, *negative_clips(cache / "negatives", recipe.negatives, seed=args.seed)]
    labels = tuple(sorted({c.genre for c in clips}))
    if args.split == "segment":
        return _train_leaky(args, command, recipe, clips, skipped, cache, data_dir)
    # Augmented copies only for training clips, degraded copies only for test clips: halves cold-cache time.
    y = [labels.index(c.genre) for c in clips]
    parts = holdout_parts(y, args.test_fraction, args.seed)
    variants = {c.clip_id: (eval_variants(severities) if p else aug_variants(recipe, severities))
                for c, p in zip(clips, parts.tolist(), strict=True)}
    spec = make_spec(labels, recipe)
    data = load_data(clips, skipped, spec, variants, cache, args.workers)
    log.info("features ready for %d clips (%d computed, %d cached) in %.0f s", len(data.clips),
             data.store.computed, data.store.cache_hits, time.perf_counter() - started)
    from trainer.ship import ship

    shipped = ship(recipe, data, args.out, seed=args.seed, threads=args.threads, severities=severities,
                   test_fraction=args.test_fraction, command=command, save_float=args.save_float, cache_dir=cache)
    shipped["wall_seconds"] = time.perf_counter() - started
    history = shipped.pop("history")
    plot_confusion(args.out / "confusion.png", shipped["confusion_clip_int8"], data.labels,
                   f"held-out clips, int8 ({shipped['test_clips']} clips)")
    plot_curves(args.out / "curves.png", history, f"recipe {recipe.name}")
    shipped["history"] = history
    update_report(args.out, {"data": _data_section(data_dir, data), "shipped": shipped,
                             "recipe_definitions": {recipe.name: recipe.to_dict()}})
    log.info("bundle written to %s: clip acc int8 %.3f (float %.3f), macro %.3f, %d bytes, %.0f s", args.out,
             shipped["clip_accuracy_int8"], shipped["clip_accuracy_float"], shipped["clip_macro_accuracy_int8"],
             shipped["tflite_bytes"], shipped["wall_seconds"])
    return 0


def _train_leaky(args: argparse.Namespace, command: str, recipe: Recipe, clips: Any, skipped: Any, cache: Path,
                 data_dir: Path) -> int:
    from trainer.pipeline import base_spec, load_data, segment_split_fold, velardo_segments
    from trainer.report import update_report
    from trainer.split import segment_folds

    log.warning("--split segment is LEAKY: segments of one clip land on both sides; no bundle is written")
    data = load_data(clips, skipped, base_spec(tuple(sorted({c.genre for c in clips})), recipe), ("clean",),
                     cache, args.workers)
    segments, owners = velardo_segments(data, base_spec(data.labels, recipe))
    folds = segment_folds(segments.shape[0], 5, args.seed)
    result = segment_split_fold(recipe, data, folds, 0, owners, segments, seed=args.seed, threads=args.threads)
    update_report(args.out, {"data": _data_section(data_dir, data),
                             "leaky_segment_split": {"LEAKY": True, "recipe": recipe.name, "command": command,
                                                     **result.scores["clean"].summary()}})
    return 0


def _compare(args: argparse.Namespace, command: str) -> int:
    import numpy as np

    from trainer.pipeline import aug_variants, compare, eval_variants, find_clips, load_data
    from trainer.pipeline import base_spec as make_spec
    from trainer.report import plot_robustness, update_report

    started = time.perf_counter()
    data_dir, cache, severities = _setup(args)
    # The comparison is about the genre task: no reject class, so every recipe sees the same clips.
    recipes = {name: dataclasses.replace(_recipe(name, args), negatives=0) for name in RECIPES}
    clips, skipped = find_clips(data_dir, args.quick)
    labels = tuple(sorted({c.genre for c in clips}))
    variants = ["clean", *eval_variants(severities), *aug_variants(recipes["default"], severities)]
    data = load_data(clips, skipped, make_spec(labels, recipes["default"]), variants, cache, args.workers)
    log.info("features ready (%d computed, %d cached) in %.0f s", data.store.computed, data.store.cache_hits,
             time.perf_counter() - started)
    folds = 2 if args.quick else args.folds
    full = compare(data, recipes, n_folds=folds, seed=args.seed, threads=args.threads, severities=severities,
                   jobs=args.jobs)
    # "data" belongs to the shipped model (train adds the reject class's clips); the comparison keeps its own.
    sections: dict[str, Any] = {"data_compare": _data_section(data_dir, data), "recipes": full["recipes"],
                                "robustness": full["robustness"],
                                "recipe_definitions": {k: r.to_dict() for k, r in recipes.items()}}
    core_mask = np.array([c.core for c in data.clips])
    if not args.no_core and core_mask.sum() >= 2 * folds:
        core = compare(data.subset(core_mask), recipes, n_folds=folds, seed=args.seed, threads=args.threads,
                       severities=severities, jobs=args.jobs)
        sections["recipes_core"] = core["recipes"]
        sections["robustness_core"] = core["robustness"]
    sections["cv"] = {"folds": folds, "seed": args.seed, "by": "clip, stratified", "fold_of_clip": full["folds"],
                      "fold_sizes": np.bincount(list(full["folds"].values()), minlength=folds).tolist(),
                      "command": command, "seconds": time.perf_counter() - started}
    if full["robustness"] and severities:
        plot_robustness(args.out / "robustness.png", full["robustness"], f"{folds}-fold CV by clip, all clips")
    update_report(args.out, sections)
    log.info("comparison written to %s in %.1f min", args.out, (time.perf_counter() - started) / 60)
    return 0


def _ablate(args: argparse.Namespace, command: str) -> int:
    from trainer import ablate
    from trainer.pipeline import aug_variants, eval_variants, find_clips, load_data
    from trainer.pipeline import base_spec as make_spec
    from trainer.report import update_report

    started = time.perf_counter()
    data_dir, cache, severities = _setup(args)
    if args.severity not in severities:
        raise UsageError(f"--severity {args.severity!r}: the room chain offers {', '.join(severities) or 'nothing'}")
    base = dataclasses.replace(_recipe("default", args), negatives=0)  # the genre task, as compare measures it
    settings = ablate.parse_settings(args.settings, base)
    recipe = dataclasses.replace(base, **settings)
    clips, skipped = find_clips(data_dir, args.quick)
    labels = tuple(sorted({c.genre for c in clips}))
    variants = ["clean", *eval_variants([args.severity]), *aug_variants(recipe, [args.severity])]
    data = load_data(clips, skipped, make_spec(labels, recipe), variants, cache, args.workers)
    folds = 2 if args.quick else args.folds
    clean, degraded = ablate.run(data, recipe, _recipe("velardo", args), severity=args.severity, n_folds=folds,
                                 seed=args.seed, jobs=args.jobs)
    row = {**ablate.summarize(clean, degraded, args.severity, settings), "command": command,
           "seconds": time.perf_counter() - started}
    name = args.name or (", ".join(args.settings) or "default")
    update_report(args.out, {"ablations": {name: row}}, merge=("ablations",))
    log.info("%s: clean %.3f, %s %.3f, loss %.3f ± %.3f (%d folds, %.1f min)", name, row["clean"]["mean"],
             args.severity, row[args.severity]["mean"], row["loss"]["mean"], row["loss"]["std"], folds,
             row["seconds"] / 60)
    return 0
