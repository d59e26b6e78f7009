"""``genre-train ablate``: the default recipe with some knobs changed, k-fold CV by artist, clean vs one severity.

How the recipe was chosen, kept runnable: every claim in the README's "what did not help" list is a row in
``report.json["ablations"]`` that this command rebuilds. Same folds and fold seeds as ``compare``, so a row with
no changes reproduces the comparison's default numbers.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Sequence
from typing import Any

import numpy as np

from edge.errors import SpecError, UsageError
from edge.spec import musicnn_spec
from trainer.evaluate.metrics import mean_std
from trainer.model.recipes import Recipe
from trainer.runs.compare import compare
from trainer.runs.fit import CONDITIONS_CLEAN

_KIND = "default_clip_split"


def parse_settings(pairs: Sequence[str], recipe: Recipe) -> dict[str, Any]:
    """``["cvn=true", "width=96", "high_hz=none"]`` -> typed recipe overrides; one clear error for a bad pair."""
    hints = typing.get_type_hints(Recipe)
    fields = {f.name for f in dataclasses.fields(Recipe)} - {"name", "notes"}
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or key not in fields:
            raise UsageError(f"--set {pair!r}: expected KEY=VALUE with KEY one of {', '.join(sorted(fields))}")
        out[key] = _coerce(key, text.strip(), hints[key])
    changed = dataclasses.replace(recipe, **out)  # the recipe's own checks, if any, before an hour of training
    for key in ("head_c", "clean_expert_c"):  # a logistic regression's inverse L2 strength: sklearn's error comes late
        value = getattr(changed, key)
        if key in out and value is not None and not 0 < value < 1e6:
            raise UsageError(f"--set {key}={value:g}: must be in (0, 1e6)")
    if changed.family == "tagger" and changed.hop_s is not None:  # a hop the daemon would refuse
        try:
            musicnn_spec(("a", "b"), changed.hop_s)  # only the hop is in question: any two labels
        except SpecError as exc:
            raise UsageError(f"--set hop_s={changed.hop_s:g}: {exc}") from None
    return out


def _coerce(key: str, text: str, hint: Any) -> Any:
    optional = type(None) in typing.get_args(hint)
    if optional and text.lower() == "none":
        return None
    base = next((t for t in typing.get_args(hint) if t is not type(None)), hint) if optional else hint
    try:
        if base is bool:
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(text)
            return text.lower() in ("true", "1", "yes")
        if base in (int, float, str):
            return base(text)
    except ValueError:
        raise UsageError(f"--set {key}={text}: not a valid {base.__name__}") from None
    raise UsageError(f"--set {key}: cannot be set from the command line")


def summarize(clean: Sequence[float], degraded: Sequence[float], severity: str,
              settings: dict[str, Any]) -> dict[str, Any]:
    """Per-fold clip macro accuracies -> the report row (the loss is paired: same fold, same model)."""
    loss = np.asarray(clean, dtype=np.float64) - np.asarray(degraded, dtype=np.float64)
    return {"set": settings, "severity": severity, "folds": len(clean), "clean": mean_std(clean),
            severity: mean_std(degraded), "loss": mean_std(loss.tolist())}


def run(data: Any, recipe: Recipe, baseline: Recipe, *, plan: Any, split: str, severity: str, seed: int,
        jobs: int) -> tuple[list[float], list[float]]:
    """Train ``recipe`` on each fold of ``plan``'s ``split`` (jobs processes, one TF thread each); clip macro
    accuracy per fold, clean and at ``severity``."""
    result = compare(data, {"velardo": baseline, "default": recipe}, plan=plan, runs={split: (_KIND,)}, seed=seed,
                     threads=1, severities=(severity,), jobs=jobs)
    n_folds = plan.split(split).n_folds
    rob = result[split]["robustness"][_KIND]
    values = [rob[c]["clip_macro_accuracy"]["values"] for c in (CONDITIONS_CLEAN, severity)]
    if any(len(v) != n_folds for v in values):  # mean_std drops NaN folds; a paired loss needs every fold
        raise RuntimeError(f"a fold produced no clip macro accuracy: {values}")
    return values[0], values[1]
