"""The two jobs ``genre-train`` runs: train-and-ship one model, and the cross-validated recipe comparison.

Features are extracted (in worker processes, cached) before TensorFlow is first imported.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edge.spec import FeatureSpec
from trainer.dataset import Clip, FeatureStore, Skipped, discover, extract_features
from trainer.evaluate import ClipWindows, Scores, evaluate, score
from trainer.metrics import confusion, mean_std, per_class
from trainer.recipes import Recipe
from trainer.split import groups_overlap, segment_folds, stratified_folds
from trainer.windows import cut_windows, fit_normalization

log = logging.getLogger(__name__)
FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]
CONDITIONS_CLEAN = "clean"


def severities_available() -> tuple[str, ...]:
    """The degradation severities, or () if the degradation chain cannot be imported."""
    try:
        from trainer.degrade import SEVERITIES
    except ImportError as exc:  # the chain lives in another engineer's module; train without it if absent
        log.warning("trainer.degrade unavailable (%s): no room augmentation or robustness suite", exc)
        return ()
    return tuple(SEVERITIES)


@dataclass
class Data:
    clips: list[Clip]
    labels: tuple[str, ...]
    y: IntArray
    store: FeatureStore
    skipped: list[Skipped] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {name: int(np.sum(self.y == i)) for i, name in enumerate(self.labels)}

    def subset(self, mask: npt.NDArray[np.bool_]) -> Data:
        idx = np.flatnonzero(mask)
        return Data([self.clips[i] for i in idx], self.labels, self.y[idx], self.store, self.skipped)


def find_clips(root: Path, quick: bool) -> tuple[list[Clip], list[Skipped]]:
    """Discover clips; ``quick`` keeps 3 clips of each of the first 4 genres (smoke tests)."""
    clips, skipped = discover(root)
    if quick:
        genres = sorted({c.genre for c in clips})[:4]
        clips = [c for g in genres for c in [c for c in clips if c.genre == g][:3]]
    return clips, skipped


def load_data(clips: Sequence[Clip], skipped: list[Skipped], spec: FeatureSpec,
              variants: Sequence[str] | Mapping[str, Sequence[str]], cache_dir: Path,
              workers: int | None) -> Data:
    """Extract (or read cached) features; drop clips that fail, keeping them in ``skipped``."""
    store = extract_features(clips, spec, variants, cache_dir=cache_dir, workers=workers)
    bad = {s.clip_id for s in store.skipped}
    kept = [c for c in clips if c.clip_id not in bad]
    labels = tuple(sorted({c.genre for c in kept}))
    if len(labels) < 2:
        from trainer.dataset import DatasetError

        raise DatasetError(f"only {len(labels)} genre(s) left after skipping undecodable files; need at least two")
    y = np.array([labels.index(c.genre) for c in kept], dtype=np.int64)
    return Data(kept, labels, y, store, [*skipped, *store.skipped])


def base_spec(labels: tuple[str, ...], recipe: Recipe) -> FeatureSpec:
    return FeatureSpec(labels=labels, cmn=recipe.cmn, cvn=recipe.cvn, low_hz=recipe.low_hz, high_hz=recipe.high_hz,
                       mel_floor_db=recipe.mel_floor_db)


def aug_variants(recipe: Recipe, severities: Sequence[str]) -> list[str]:
    return [f"aug/{k}" for k in range(recipe.aug_copies)] if severities else []


def eval_variants(severities: Sequence[str]) -> list[str]:
    return [f"eval/{s}" for s in severities]


def eval_hop(recipe: Recipe, spec: FeatureSpec) -> int:
    return recipe.eval_hop_frames or spec.hop_frames


@dataclass
class FoldResult:
    scores: dict[str, Scores]  # condition ("clean", "mild", ...) -> scores of the test clips
    y_true: IntArray
    seconds: float
    params: int
    trained: Any = None


def fit_and_evaluate(recipe: Recipe, data: Data, train_idx: IntArray, test_idx: IntArray, *, seed: int,
                     threads: int | None, severities: Sequence[str], monitor: bool = False) -> FoldResult:
    """Train ``recipe`` on clips ``train_idx`` and score clips ``test_idx`` clean and at each severity."""
    from trainer.train import predict, train

    spec = base_spec(data.labels, recipe)
    store = data.store
    augs = aug_variants(recipe, severities)
    versions = [[store.get(data.clips[i].clip_id)] + [store.get(data.clips[i].clip_id, v) for v in augs]
                for i in train_idx]
    if recipe.normalize:
        windows = np.concatenate([cut_windows(v[0], spec, spec.hop_frames) for v in versions])
        mean, std = fit_normalization(windows, spec)
        spec = spec.with_updates(mean=mean, std=std)
    hop = eval_hop(recipe, spec)
    y_test = data.y[test_idx]
    clean_cw = ClipWindows.build([store.get(data.clips[i].clip_id) for i in test_idx], y_test, spec, hop)
    mon = (clean_cw.windows, y_test[clean_cw.owner]) if monitor else None
    trained = train(recipe, spec, versions, data.y[train_idx], seed=seed, threads=threads, monitor=mon)
    n = len(data.labels)
    scores = {CONDITIONS_CLEAN: evaluate(lambda w: predict(trained, w), clean_cw, n)}
    for sev in severities:
        cw = ClipWindows.build([store.get(data.clips[i].clip_id, f"eval/{sev}") for i in test_idx], y_test, spec, hop)
        scores[sev] = evaluate(lambda w: predict(trained, w), cw, n)
    return FoldResult(scores, y_test, trained.seconds, trained.params, trained)


def segment_split_fold(recipe: Recipe, data: Data, folds: IntArray, fold: int, owners: IntArray,
                       segments: FloatArray, *, seed: int, threads: int | None) -> FoldResult:
    """LEAKY baseline: train on segments of fold != ``fold``, score the rest (clip verdict per clip part)."""
    from trainer.train import predict, train

    spec = base_spec(data.labels, recipe)
    tr, te = folds != fold, folds == fold
    trained = train(recipe, spec, [], data.y, seed=seed, threads=threads,
                    fixed_windows=(segments[tr], data.y[owners[tr]]))
    clips_in_test = np.unique(owners[te])
    remap = {int(c): i for i, c in enumerate(clips_in_test)}
    cw = ClipWindows(segments[te], np.array([remap[int(o)] for o in owners[te]], dtype=np.int64),
                     data.y[clips_in_test])
    scores = {CONDITIONS_CLEAN: score(predict(trained, cw.windows), cw, len(data.labels))}
    return FoldResult(scores, data.y[clips_in_test], trained.seconds, trained.params, trained)


def velardo_segments(data: Data, spec: FeatureSpec) -> tuple[FloatArray, IntArray]:
    """10 non-overlapping windows per clip (Velardo's 3 s segments) and the clip index of each."""
    cut = [cut_windows(data.store.get(c.clip_id), spec, spec.frames_per_window)[:10] for c in data.clips]
    owners = np.concatenate([np.full(len(w), i, dtype=np.int64) for i, w in enumerate(cut)])
    return np.concatenate(cut), owners


def summarize(results: Sequence[FoldResult], labels: tuple[str, ...], leaky: bool) -> dict[str, Any]:
    """Mean ± std over folds of every metric, pooled clip-level confusion and per-genre P/R/F1 (clean)."""
    clean = [r.scores[CONDITIONS_CLEAN].summary() for r in results]
    n = len(labels)
    cm = sum((confusion(r.y_true, r.scores[CONDITIONS_CLEAN].clip_pred, n) for r in results),
             np.zeros((n, n), dtype=np.int64))
    out: dict[str, Any] = {k: mean_std([c[k] for c in clean]) for k in clean[0]}
    out.update({
        "leaky": leaky,
        "folds": len(results),
        "train_seconds": mean_std([r.seconds for r in results]),
        "params": results[0].params,
        "confusion_clip": np.asarray(cm).tolist(),
        "per_genre_clip": per_class(np.asarray(cm), labels),
    })
    return out


def robustness(results: Sequence[FoldResult], severities: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for cond in (CONDITIONS_CLEAN, *severities):
        out[cond] = {
            "clip_macro_accuracy": mean_std([r.scores[cond].clip_macro_accuracy for r in results]),
            "clip_accuracy": mean_std([r.scores[cond].clip_accuracy for r in results]),
            "segment_accuracy": mean_std([r.scores[cond].segment_accuracy for r in results]),
        }
    return out


RUN_KINDS = ("velardo_segment_split", "velardo_clip_split", "default_clip_split")
_worker: dict[str, Any] = {}


def _init_worker(data: Data, recipes: Mapping[str, Recipe], severities: Sequence[str], folds: IntArray,
                 seg_folds: IntArray, threads: int | None) -> None:
    spec = base_spec(data.labels, recipes["velardo"])
    segments, owners = velardo_segments(data, spec)
    _worker.update(data=data, recipes=recipes, severities=severities, folds=folds, seg_folds=seg_folds,
                   threads=threads, segments=segments, owners=owners)


def _run_task(task: tuple[str, int, int]) -> tuple[str, int, FoldResult]:
    """One (run kind, fold) of the comparison; the seed depends only on the fold, never on scheduling."""
    kind, fold, fold_seed = task
    w = _worker
    data, recipes, folds = w["data"], w["recipes"], w["folds"]
    if kind == "velardo_segment_split":
        result = segment_split_fold(recipes["velardo"], data, w["seg_folds"], fold, w["owners"], w["segments"],
                                    seed=fold_seed, threads=w["threads"])
    else:
        recipe = recipes[kind.split("_", 1)[0]]
        tr, te = np.flatnonzero(folds != fold), np.flatnonzero(folds == fold)
        result = fit_and_evaluate(recipe, data, tr, te, seed=fold_seed, threads=w["threads"],
                                  severities=w["severities"])
    result.trained = None  # Keras models stay in the worker
    return kind, fold, result


def compare(data: Data, recipes: Mapping[str, Recipe], *, n_folds: int, seed: int, threads: int | None,
            severities: Sequence[str], jobs: int = 1, progress: bool = True,
            kinds: Sequence[str] = RUN_KINDS) -> dict[str, Any]:
    """k-fold CV by clip (and the leaky segment split) for velardo and default on ``data``; ``kinds`` picks runs.

    ``jobs`` > 1 trains folds in that many spawned processes (one TF thread each unless ``threads``):
    on 2 small cores two single-threaded trainings beat one two-threaded one.
    """
    folds = stratified_folds(data.y, n_folds, seed)
    assert not groups_overlap([c.clip_id for c in data.clips], folds)
    spec = base_spec(data.labels, recipes["velardo"])
    seg_count = velardo_segments(data, spec)[0].shape[0]
    seg_folds = segment_folds(seg_count, n_folds, seed)
    # Longest tasks first so the last worker is not left alone with a long velardo fold.
    tasks = [(kind, f, seed * 1000 + f) for kind in kinds for f in range(n_folds)]
    started = time.perf_counter()
    done: dict[tuple[str, int], FoldResult] = {}
    if jobs > 1:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        with ctx.Pool(jobs, initializer=_init_worker,
                      initargs=(data, recipes, severities, folds, seg_folds, threads or 1)) as pool:
            for kind, f, result in pool.imap_unordered(_run_task, tasks):
                done[(kind, f)] = result
                if progress:
                    log.info("%s fold %d: clip macro %.3f (%d/%d, %.0f s)", kind, f,
                             result.scores[CONDITIONS_CLEAN].clip_macro_accuracy, len(done), len(tasks),
                             time.perf_counter() - started)
    else:
        _init_worker(data, recipes, severities, folds, seg_folds, threads)
        for task in tasks:
            kind, f, result = _run_task(task)
            done[(kind, f)] = result
            if progress:
                log.info("%s fold %d: clip macro %.3f (%d/%d, %.0f s)", kind, f,
                         result.scores[CONDITIONS_CLEAN].clip_macro_accuracy, len(done), len(tasks),
                         time.perf_counter() - started)
    runs = {kind: [done[(kind, f)] for f in range(n_folds)] for kind in kinds}
    return {
        "recipes": {k: summarize(v, data.labels, leaky=k.endswith("segment_split")) for k, v in runs.items()},
        "robustness": {k: robustness(v, severities) for k, v in runs.items() if k.endswith("clip_split")},
        "folds": {c.clip_id: int(f) for c, f in zip(data.clips, folds, strict=True)},
        "segment_fold_seed": seed,
        "seconds": time.perf_counter() - started,
    }
