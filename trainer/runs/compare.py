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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edge.spec import FeatureSpec
from trainer.augment.degrade import SEVERITIES
from trainer.augment.windows import cut_windows, fit_normalization
from trainer.data.dataset import Clip, DatasetError, FeatureStore, Skipped, discover, extract_features
from trainer.data.plan import CLEAN, RunPlan, Split, aug_variants, eval_variant
from trainer.data.split import segment_folds
from trainer.evaluate.metrics import confusion, mean_std, per_class, thin_genres
from trainer.evaluate.scores import ClipWindows, Scores, evaluate, score
from trainer.model.recipes import Recipe
from trainer.model.train import predict, train
from trainer.teacher import distill
from trainer.teacher.embed import ClipEmbedding

log = logging.getLogger(__name__)
FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]
CONDITIONS_CLEAN = CLEAN


def severities_available() -> tuple[str, ...]:
    """The room chain's severities (``genre-train --no-degrade`` skips them)."""
    return tuple(SEVERITIES)


@dataclass
class Data:
    clips: list[Clip]
    labels: tuple[str, ...]
    y: IntArray
    store: FeatureStore
    skipped: list[Skipped] = field(default_factory=list)
    # Teacher embeddings and artist groups by clip id: set for recipes that distil (trainer.teacher).
    teacher: dict[str, ClipEmbedding] = field(default_factory=dict)
    groups: dict[str, str] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {name: int(np.sum(self.y == i)) for i, name in enumerate(self.labels)}

    @property
    def clip_ids(self) -> list[str]:
        return [c.clip_id for c in self.clips]

    def subset(self, mask: npt.NDArray[np.bool_]) -> Data:
        idx = np.flatnonzero(mask)
        return Data([self.clips[i] for i in idx], self.labels, self.y[idx], self.store, self.skipped, self.teacher,
                    self.groups)

    def restrict(self, genres: Sequence[str]) -> Data:
        """Only the clips of ``genres``, relabelled over those genres alone (a 4-genre task is not 10)."""
        keep = [c for c in self.clips if c.genre in set(genres)]
        labels = tuple(sorted({c.genre for c in keep}))
        return Data(keep, labels, np.array([labels.index(c.genre) for c in keep], dtype=np.int64), self.store,
                    self.skipped, self.teacher, self.groups)


def find_clips(root: Path, quick: bool) -> tuple[list[Clip], list[Skipped]]:
    """Discover clips; ``quick`` keeps 3 clips of each of the first 4 genres (smoke tests).

    The 3 are spread over the genre's ids (first, middle, last): GTZAN ids run in artist order, so the first
    three are usually one artist, which a split by artist cannot put on two sides.
    """
    clips, skipped = discover(root)
    if quick:
        genres = sorted({c.genre for c in clips})[:4]
        picked = []
        for g in genres:
            mine = [c for c in clips if c.genre == g]
            picked += [mine[i] for i in sorted({0, len(mine) // 2, len(mine) - 1})]
        clips = picked
    return clips, skipped


def decodable(clips: Sequence[Clip], skipped: list[Skipped], spec: FeatureSpec, cache_dir: Path,
              workers: int | None) -> tuple[list[Clip], list[Skipped], int]:
    """Decode every clip once (its clean features, cached) before a run plan is made over the survivors.

    Returns the clips that decode and are long enough, every skipped clip, and how many features were computed.
    """
    store = extract_features(clips, spec, (CLEAN,), cache_dir=cache_dir, workers=workers)
    bad = {s.clip_id for s in store.skipped}
    return [c for c in clips if c.clip_id not in bad], [*skipped, *store.skipped], store.computed


def load_data(clips: Sequence[Clip], skipped: list[Skipped], spec: FeatureSpec,
              variants: Sequence[str] | Mapping[str, Sequence[str]], cache_dir: Path,
              workers: int | None, probed: int = 0) -> Data:
    """Extract (or read cached) the planned features of ``clips``, which ``decodable`` has already checked.

    ``probed`` is the count ``decodable`` computed: those clean features are not counted again as cache hits.
    """
    store = extract_features(clips, spec, variants, cache_dir=cache_dir, workers=workers)
    if store.skipped:  # decoded a moment ago: a file changed under us, and the plan no longer holds
        raise DatasetError(f"{store.skipped[0].path}: no longer decodes ({store.skipped[0].reason})")
    store.computed += probed
    store.cache_hits -= probed
    labels = tuple(sorted({c.genre for c in clips}))
    if len(labels) < 2:
        raise DatasetError(f"only {len(labels)} genre(s) left after skipping undecodable files; need at least two")
    y = np.array([labels.index(c.genre) for c in clips], dtype=np.int64)
    return Data(list(clips), labels, y, store, list(skipped))


def base_spec(labels: tuple[str, ...], recipe: Recipe) -> FeatureSpec:
    return FeatureSpec(labels=labels, cmn=recipe.cmn, cvn=recipe.cvn, low_hz=recipe.low_hz, high_hz=recipe.high_hz,
                       mel_floor_db=recipe.mel_floor_db)


def train_copies(recipe: Recipe, severities: Sequence[str]) -> list[str]:
    """The room copies ``recipe`` trains on besides clean (none without the room chain)."""
    return aug_variants(recipe.aug_copies, severities, recipe.noise_copies)


def eval_hop(recipe: Recipe, spec: FeatureSpec) -> int:
    return recipe.eval_hop_frames or spec.hop_frames


@dataclass
class FoldResult:
    scores: dict[str, Scores]  # condition ("clean", "mild", ...) -> scores of the test clips
    y_true: IntArray
    seconds: float
    params: int
    trained: Any = None
    extra: dict[str, Any] = field(default_factory=dict)  # "teacher_head" Scores, or what an on_fold hook returned


def fit_and_evaluate(recipe: Recipe, data: Data, train_idx: IntArray, test_idx: IntArray, *, seed: int,
                     threads: int | None, severities: Sequence[str], monitor: bool = False) -> FoldResult:
    """Train ``recipe`` on clips ``train_idx`` and score clips ``test_idx`` clean and at each severity."""
    spec = base_spec(data.labels, recipe)
    store = data.store
    augs = train_copies(recipe, severities)
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
    n = len(data.labels)
    extra: dict[str, Any] = {}
    tables = None
    if recipe.teacher_weight:
        ids = [data.clips[i].clip_id for i in train_idx]
        emb = distill.of(data.teacher, ids)
        tables = distill.teacher_tables(emb, data.y[train_idx], [data.groups.get(c, c) for c in ids],
                                        [v[0].shape[0] for v in versions], spec,
                                        temperature=recipe.teacher_temperature, folds=recipe.teacher_folds, seed=seed)
        test_emb = distill.of(data.teacher, [data.clips[i].clip_id for i in test_idx])
        extra["teacher_head"] = distill.head_scores(emb, data.y[train_idx], test_emb, y_test, n, seed)
    trained = train(recipe, spec, versions, data.y[train_idx], seed=seed, threads=threads, monitor=mon,
                    teacher=tables)
    scores = {CONDITIONS_CLEAN: evaluate(lambda w: predict(trained, w), clean_cw, n)}
    for sev in severities:
        frames = [store.get(data.clips[i].clip_id, eval_variant(sev)) for i in test_idx]
        cw = ClipWindows.build(frames, y_test, spec, hop)
        scores[sev] = evaluate(lambda w: predict(trained, w), cw, n)
    return FoldResult(scores, y_test, trained.seconds, trained.params, trained, extra)


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
