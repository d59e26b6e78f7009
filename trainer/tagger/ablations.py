"""What each lever of the tagger's head buys on the held-out clips: the report's ablation rows, fitted on the
run's training clips only and scored clean, in the training chain's rooms and in the unseen family."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from trainer.data.plan import CLEAN
from trainer.evaluate.scores import Scores, scored_variant
from trainer.model.recipes import Recipe
from trainer.tagger.adapt import adaptation_rows
from trainer.tagger.fit import TaggerData, evaluate, fit, window_rows

IntArray = npt.NDArray[np.int64]


def ablate_heads(recipe: Recipe, data: TaggerData, train_idx: IntArray, test_idx: IntArray, copies: Sequence[str],
                 conditions: Sequence[str], seed: int,
                 shipped_scores: Mapping[str, Scores] | None = None) -> dict[str, dict[str, object]]:
    """Heads fitted on clean windows alone, with the room copies, with the wide-noise copies, with both, with both
    and the FDN rooms (the shipped recipe's copies), the last with 10x stronger L2 (it wins clean by artist CV and
    loses the rooms; ``compare --tagger-c`` sweeps it) and, for a recipe with a clean expert, the gated head it ships
    (:mod:`trainer.tagger.heads`; ``shipped_scores``, its scores as the ship computed them on the same clips and
    conditions): what each lever buys on the held-out clips, clean, in the training chain and in the unseen family.
    The head on every copy is also scored re-standardised to the room it hears (:mod:`trainer.tagger.adapt`)."""
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
    for name, (chosen, c_scale) in options.items():  # the linear heads
        if (tuple(chosen), c_scale) in seen:
            continue
        seen.add((tuple(chosen), c_scale))
        head = fit(dataclasses.replace(recipe, head_c=recipe.head_c * c_scale), data, train_idx, chosen, seed)
        out[name] = {"copies": chosen, "head_c": recipe.head_c * c_scale,
                     **_scored(evaluate(head.linear(), data, test_idx, (CLEAN, *conditions)))}
        if chosen == every and c_scale == 1.0:  # the shipped recipe's head: would adapting it to the room pay?
            rows = {cond: window_rows(data, test_idx, scored_variant(cond)) for cond in (CLEAN, *conditions)}
            for how, adapted in adaptation_rows(head, rows, data.y[test_idx], data.labels).items():
                room = [v for k, v in adapted.items() if k.startswith("unseen_")]
                out[f"{name}, re-standardised: {how}"] = {
                    "copies": chosen, "head_c": recipe.head_c, "macro": adapted,
                    "unseen_mean": float(np.mean(room)) if room else float("nan")}
    if recipe.clean_expert_c is not None and shipped_scores is not None:
        out[f"{shipped}, + a clean expert and a gate"] = {
            "copies": every, "head_c": recipe.head_c, "clean_expert_c": recipe.clean_expert_c,
            **_scored(shipped_scores)}
    return out


def _scored(scores: Mapping[str, Scores]) -> dict[str, object]:
    macro = {k: v.clip_macro_accuracy for k, v in scores.items()}
    unseen = [v for k, v in macro.items() if k.startswith("unseen_")]
    return {"macro": macro, "clip_accuracy": {k: v.clip_accuracy for k, v in scores.items()},
            "unseen_mean": float(np.mean(unseen)) if unseen else float("nan")}
