"""The tagger family behind the trainer's model interface: fit a head on a run's training clips, give window
probabilities of any clip copy, score a run's test clips.

Only the run's training clips (their clean windows and training copies) reach the head; test clips, their
evaluation rooms and the unseen family are only ever scored.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from edge.spec import FeatureSpec
from trainer.data.plan import CLEAN
from trainer.evaluate.scores import ClipWindows, Scores, score, scored_variant
from trainer.model.recipes import Recipe
from trainer.tagger.adapt import adaptation_rows
from trainer.tagger.embed import WindowEmbeddings
from trainer.tagger.export import N_TAGS
from trainer.teacher.head import GenreHead, LinearHead, fit_arrays

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


@dataclass
class TaggerData:
    """A run's clips (trainer.data.dataset.Clip), labels, and every planned copy's window embeddings."""

    clips: list[object]
    labels: tuple[str, ...]
    y: IntArray
    emb: WindowEmbeddings
    spec: FeatureSpec

    @property
    def clip_ids(self) -> list[str]:
        return [c.clip_id for c in self.clips]  # type: ignore[attr-defined]

    def counts(self) -> dict[str, int]:
        return {name: int(np.sum(self.y == i)) for i, name in enumerate(self.labels)}


def embedding_of(rows: FloatArray) -> FloatArray:
    """The head's input: the embedding model's output minus its leading tag scores."""
    return rows[:, N_TAGS:]


def fit(recipe: Recipe, data: TaggerData, train_idx: IntArray, copies: Sequence[str], seed: int) -> GenreHead:
    """The head on every window of the training clips: clean and each of ``copies``."""
    xs, ys = [], []
    for i in train_idx:
        for variant in (CLEAN, *copies):
            rows = embedding_of(data.emb.get(data.clip_ids[i], variant))
            xs.append(rows)
            ys.append(np.full(rows.shape[0], data.y[i], dtype=np.int64))
    return fit_arrays(np.concatenate(xs), np.concatenate(ys), len(data.labels), seed, recipe.head_c)


def window_rows(data: TaggerData, idx: IntArray, variant: str) -> list[FloatArray]:
    """The head's input windows of clips ``idx`` in ``variant``, one array per clip."""
    return [embedding_of(data.emb.get(data.clip_ids[i], variant)) for i in idx]


def window_probs(head: LinearHead | GenreHead, data: TaggerData, idx: IntArray, variant: str) -> ClipWindows:
    """``ClipWindows`` of clips ``idx`` in ``variant`` whose ``windows`` are the head's probabilities."""
    rows = window_rows(data, idx, variant)
    owner = np.concatenate([np.full(r.shape[0], k, dtype=np.int64) for k, r in enumerate(rows)])
    return ClipWindows(head.predict(np.concatenate(rows)), owner, data.y[idx])


def evaluate(head: LinearHead | GenreHead, data: TaggerData, test_idx: IntArray,
             conditions: Sequence[str]) -> dict[str, Scores]:
    """Scores of the test clips clean (``"clean"``) and in each evaluation condition."""
    out = {}
    for cond in conditions:
        cw = window_probs(head, data, test_idx, scored_variant(cond))
        out[cond] = score(cw.windows, cw, len(data.labels))
    return out


def ablate_heads(recipe: Recipe, data: TaggerData, train_idx: IntArray, test_idx: IntArray, copies: Sequence[str],
                 conditions: Sequence[str], seed: int) -> dict[str, dict[str, object]]:
    """Heads fitted on clean windows alone, with the room copies, with the wide-noise copies, with both, with both
    and the FDN rooms (the shipped recipe's copies), and the last with 10x stronger L2 (it wins clean by artist CV and
    loses the rooms; ``compare --tagger-c`` sweeps it): what each lever buys on the held-out clips, clean, in the
    training chain and in the unseen family. The shipped recipe's head is also scored re-standardised to the room it
    hears (:mod:`trainer.tagger.adapt`)."""
    rooms = [c for c in copies if c.startswith("aug/")]
    noise = [c for c in copies if c.startswith("noise/")]
    half = [*rooms[: (len(rooms) + 1) // 2], *noise[: (len(noise) + 1) // 2]]
    both = [*rooms, *noise]
    every = list(copies)
    shipped = "clean + both + FDN rooms" if any(c.startswith("reverb/") for c in copies) else "clean + both"
    options = {"clean windows only": ([], 1.0), "clean + room copies": (rooms, 1.0),
               "clean + wide-noise copies": (noise, 1.0), "clean + half of both": (half, 1.0),
               "clean + both": (both, 1.0), shipped: (every, 1.0), f"{shipped}, 10x stronger L2": (every, 0.1)}
    out: dict[str, dict[str, object]] = {}
    seen: set[tuple[tuple[str, ...], float]] = set()
    for name, (chosen, c_scale) in options.items():
        if (tuple(chosen), c_scale) in seen:
            continue
        seen.add((tuple(chosen), c_scale))
        head = fit(dataclasses.replace(recipe, head_c=recipe.head_c * c_scale), data, train_idx, chosen, seed)
        scores = evaluate(head.linear(), data, test_idx, (CLEAN, *conditions))
        macro = {k: v.clip_macro_accuracy for k, v in scores.items()}
        unseen = [v for k, v in macro.items() if k.startswith("unseen_")]
        out[name] = {"copies": chosen, "head_c": recipe.head_c * c_scale, "macro": macro,
                     "clip_accuracy": {k: v.clip_accuracy for k, v in scores.items()},
                     "unseen_mean": float(np.mean(unseen)) if unseen else float("nan")}
        if chosen == every and c_scale == 1.0:  # the shipped recipe's head: would adapting it to the room pay?
            rows = {cond: window_rows(data, test_idx, scored_variant(cond)) for cond in macro}
            for how, adapted in adaptation_rows(head, rows, data.y[test_idx], data.labels).items():
                room = [v for k, v in adapted.items() if k.startswith("unseen_")]
                out[f"{name}, re-standardised: {how}"] = {
                    "copies": chosen, "head_c": recipe.head_c, "macro": adapted,
                    "unseen_mean": float(np.mean(room)) if room else float("nan")}
    return out
