"""What both jobs of the CNN family share: finding and decoding clips, their features, and one fold's training.

``trainer.runs.ship`` trains one model on the held-out split, ``trainer.runs.compare`` every fold of the
cross-validation; both fit and score a recipe through :func:`fit_and_evaluate`, which lives here so neither
borrows from the other. (The tagger family's counterpart is ``trainer.tagger.fit``.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edge.spec import FeatureSpec
from trainer.augment.degrade import SEVERITIES
from trainer.augment.windows import cut_windows, fit_normalization
from trainer.data.dataset import Clip, DatasetError, FeatureStore, Skipped, discover, extract_features
from trainer.data.plan import CLEAN, aug_variants, eval_variant
from trainer.evaluate.scores import ClipWindows, Scores, evaluate
from trainer.model.recipes import Recipe
from trainer.model.train import predict, train
from trainer.teacher import distill
from trainer.teacher.embed import ClipEmbedding

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
    return aug_variants(recipe.aug_copies, severities, recipe.noise_copies, recipe.reverb_copies)


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
