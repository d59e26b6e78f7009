"""The tagger family's rows of ``genre-train compare``: the same folds as the CNN recipes, every fold's head
fitted on that fold's training clips, scored on its test clips clean and in every condition.

A head is a cheap fit on cached embeddings, so the folds run here in the parent process, after the CNN folds.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from trainer.data.plan import CLEAN, Split
from trainer.model.recipes import Recipe
from trainer.runs.compare import robustness, summarize
from trainer.runs.fit import FoldResult, train_copies
from trainer.tagger.fit import TaggerData, evaluate
from trainer.tagger.heads import fit_head
from trainer.tagger.mixture import head_size

PARAMS = 792_079  # MSD_musicnn's; a linear head adds (1706 + 1) x classes


def kind(name: str) -> str:
    """The run kind a tagger recipe's rows are filed under, beside ``default_clip_split``."""
    return f"{name}_clip_split"


def tagger_folds(recipes: Mapping[str, Recipe], data: TaggerData, split: Split, conditions: Sequence[str],
                 severities: Sequence[str], seed: int) -> dict[str, Any]:
    """``{"recipes": {kind: summary}, "robustness": {kind: ...}}`` over the folds of ``split``."""
    out: dict[str, Any] = {"recipes": {}, "robustness": {}}
    for name, recipe in recipes.items():
        results = []
        copies = train_copies(recipe, severities)
        for f in split.folds:
            train_idx, test_idx = split.indices(data.clip_ids, f)
            t0 = time.perf_counter()
            head = fit_head(recipe, data, train_idx, copies, seed * 1000 + f)
            seconds = time.perf_counter() - t0
            scores = evaluate(head, data, test_idx, (CLEAN, *conditions))
            results.append(FoldResult(scores, data.y[test_idx], seconds,
                                      PARAMS + head_size(head)))
        out["recipes"][kind(name)] = summarize(results, data.labels, leaky=False)
        out["robustness"][kind(name)] = robustness(results, conditions)
    return out
