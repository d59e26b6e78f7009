"""The two jobs ``genre-train`` runs: train-and-ship one model, and the cross-validated recipe comparison.

Features are extracted (in worker processes, cached) before TensorFlow is first imported. Which clips train
and which are scored comes from the run plan (trainer.data.plan, ``split.json``), made once over the clips that
decode; nothing here splits clips on its own. Per-fold extensions (issue 11's playlist evaluation) plug
into ``compare`` as an ``on_fold`` hook that receives a ``FoldContext``.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from edge.spec import FeatureSpec
from trainer.augment.windows import cut_windows
from trainer.data.plan import RunPlan, Split
from trainer.data.split import segment_folds
from trainer.evaluate.metrics import confusion, mean_std, per_class, thin_genres
from trainer.evaluate.scores import ClipWindows, score
from trainer.model.recipes import Recipe
from trainer.model.train import predict, train
from trainer.runs.fit import CONDITIONS_CLEAN, Data, FoldResult, base_spec, fit_and_evaluate

log = logging.getLogger(__name__)
FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]
def segment_split_fold(recipe: Recipe, data: Data, folds: IntArray, fold: int, owners: IntArray,
                       segments: FloatArray, *, seed: int, threads: int | None) -> FoldResult:
    """LEAKY baseline: train on segments of fold != ``fold``, score the rest (clip verdict per clip part)."""
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
        "thin_genres": thin_genres(np.asarray(cm), labels),
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


RUN_KINDS = ("velardo_segment_split", "velardo_clip_split", "default_clip_split", "distilled_clip_split")
_worker: dict[str, Any] = {}


@dataclass(frozen=True)
class FoldContext:
    """One trained fold of ``compare``, as a per-fold hook sees it (e.g. issue 11's ``playlist_fold``).

    ``data`` is the split's data (restricted to the split's genres, if any); ``train_idx`` / ``test_idx`` index
    ``data.clips``; ``trained`` is trainer.model.train.TrainedModel (``.model`` Keras, ``.spec`` FeatureSpec with the
    fold's normalisation, ``.recipe``); ``result`` holds the fold's scores. The hook runs in the fold's worker
    process, so it must be a module-level function and return something picklable (a JSON-able dict).
    """

    split: str
    kind: str
    fold: int
    seed: int
    data: Data
    train_idx: IntArray
    test_idx: IntArray
    trained: Any
    result: FoldResult
    severities: tuple[str, ...]


FoldHook = Callable[[FoldContext], dict[str, Any]]


def _init_worker(data: Data, recipes: Mapping[str, Recipe], severities: Sequence[str], splits: Mapping[str, Split],
                 seg_folds: IntArray | None, threads: int | None, on_fold: FoldHook | None) -> None:
    _worker.clear()
    _worker.update(data=data, recipes=recipes, severities=tuple(severities), splits=splits, seg_folds=seg_folds,
                   threads=threads, on_fold=on_fold, split_data={})
    if seg_folds is not None:
        segments, owners = velardo_segments(data, base_spec(data.labels, recipes["velardo"]))
        _worker.update(segments=segments, owners=owners)


def _split_data(name: str) -> Data:
    """The data a split trains and scores on (its genres only, if it names some), built once per worker."""
    cache: dict[str, Data] = _worker["split_data"]
    if name not in cache:
        split: Split = _worker["splits"][name]
        data: Data = _worker["data"]
        cache[name] = data.restrict(split.genres) if split.genres else data
    return cache[name]


def _run_task(task: tuple[str, str, int, int]) -> tuple[str, str, int, FoldResult]:
    """One (split, run kind, fold) of the comparison; the seed depends only on the fold, never on scheduling."""
    name, kind, fold, fold_seed = task
    w = _worker
    recipes = w["recipes"]
    if kind == "velardo_segment_split":
        data = w["data"]
        result = segment_split_fold(recipes["velardo"], data, w["seg_folds"], fold, w["owners"], w["segments"],
                                    seed=fold_seed, threads=w["threads"])
    else:
        data = _split_data(name)
        recipe = recipes[kind.split("_", 1)[0]]
        tr, te = w["splits"][name].indices(data.clip_ids, fold)
        result = fit_and_evaluate(recipe, data, tr, te, seed=fold_seed, threads=w["threads"],
                                  severities=w["severities"])
        if w["on_fold"] is not None:
            ctx = FoldContext(name, kind, fold, fold_seed, data, tr, te, result.trained, result, w["severities"])
            result.extra = w["on_fold"](ctx)
    result.trained = None  # Keras models stay in the worker
    return name, kind, fold, result


def compare(data: Data, recipes: Mapping[str, Recipe], *, plan: RunPlan, runs: Mapping[str, Sequence[str]],
            seed: int, threads: int | None, severities: Sequence[str], jobs: int = 1, progress: bool = True,
            on_fold: FoldHook | None = None) -> dict[str, Any]:
    """Cross-validate: for each split named in ``runs`` (a split of ``plan``), train each of its run kinds
    (``RUN_KINDS``) on every fold; ``velardo_segment_split`` is the leaky baseline over segment folds.

    ``jobs`` > 1 trains folds in that many spawned processes (one TF thread each unless ``threads``):
    on 2 small cores two single-threaded trainings beat one two-threaded one. ``on_fold`` is called in the
    worker after each trained fold (see FoldContext); what it returns is in ``extras[split][kind][fold]``.
    Returns ``{split: {"recipes", "robustness", "fold_of_clip", "fold_sizes"}, "extras", "seconds"}``.
    """
    splits = {name: plan.split(name) for name in runs}
    seg_folds = None
    if any("velardo_segment_split" in kinds for kinds in runs.values()):
        seg_count = velardo_segments(data, base_spec(data.labels, recipes["velardo"]))[0].shape[0]
        n_seg = next(splits[n].n_folds for n, kinds in runs.items() if "velardo_segment_split" in kinds)
        seg_folds = segment_folds(seg_count, n_seg, seed)
    tasks = [(name, kind, f, seed * 1000 + f) for name, kinds in runs.items() for kind in kinds
             for f in splits[name].folds]
    started = time.perf_counter()
    done: dict[tuple[str, str, int], FoldResult] = {}

    def record(name: str, kind: str, f: int, result: FoldResult) -> None:
        done[(name, kind, f)] = result
        if progress:
            log.info("%s %s fold %d: clip macro %.3f (%d/%d, %.0f s)", name, kind, f,
                     result.scores[CONDITIONS_CLEAN].clip_macro_accuracy, len(done), len(tasks),
                     time.perf_counter() - started)

    init = (data, recipes, severities, splits, seg_folds)
    if jobs > 1:
        ctx = mp.get_context("spawn")
        with ctx.Pool(jobs, initializer=_init_worker, initargs=(*init, threads or 1, on_fold)) as pool:
            for name, kind, f, result in pool.imap_unordered(_run_task, tasks):
                record(name, kind, f, result)
    else:
        _init_worker(*init, threads, on_fold)
        for task in tasks:
            record(*_run_task(task))
    out: dict[str, Any] = {"extras": {}, "seconds": time.perf_counter() - started}
    for name, kinds in runs.items():
        labels = (data.restrict(splits[name].genres) if splits[name].genres else data).labels
        per = {k: [done[key] for key in sorted(done) if key[0] == name and key[1] == k] for k in kinds}
        part = [splits[name].part.get(c, -1) for c in data.clip_ids]
        out[name] = {
            "recipes": {k: summarize(v, labels, leaky=k.endswith("segment_split")) for k, v in per.items()},
            "robustness": {k: robustness(v, severities) for k, v in per.items() if k.endswith("clip_split")},
            "fold_of_clip": {c: p for c, p in zip(data.clip_ids, part, strict=True) if p >= 0},
            "fold_sizes": [part.count(f) for f in range(splits[name].n_folds)],
        }
        out["extras"][name] = {k: [r.extra for r in v] for k, v in per.items() if any(r.extra for r in v)}
    return out
