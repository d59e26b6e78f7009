"""What the stream gives up for less CPU, and for less flapping: the hop and the rule's main constant.

Both curves come from window probabilities already computed on the shipped hop's grid, so they cost a rule
search each, not another pass of the model:

- **The hop.** A window every ``m`` hops is every ``m``-th window of the grid (the same 3 s of audio ends
  there), so a longer hop is the grid subsampled, the truth re-read at the kept windows' ends, and the rule
  tuned again at that hop (its constants count hops). Inference, nearly all of the daemon's CPU, falls as 1/m.
- **The rule's main constant** (``switch_per_hop``, the prior that the genre changes between two hops): for
  each value the other constants are tuned with it held, and the result judged. Small values hold a song's
  genre (fewer changes within a song, slower at a real change); large ones follow every window.

Tuned on the tuning playlists, judged on the test playlists, as the shipped rule is (``judge``). Pure.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from edge.decide.params import DecisionParams
from trainer.evaluate.playlist_eval import PlaylistRun, decide_runs, score_runs
from trainer.evaluate.tune_rule import tune_search

MAIN_CONSTANT = "switch_per_hop"
CURVE_KEYS = ("settled_accuracy", "within_song_changes_per_min", "switch_latency_s.median",
              "switch_latency_s.p90", "genre_share_not_music", "unknown_share_music")


def subsample(run: PlaylistRun, every: int) -> PlaylistRun:
    """``run`` as a daemon with a hop ``every`` times as long would see it: every ``every``-th window."""
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    if every == 1:
        return run
    times = run.truth.times_s[::every]
    return PlaylistRun(run.plan, run.condition, run.probs[::every], run.rms_dbfs[::every],
                       run.plan.truth(times, run.truth.hop_s * every))


def _tune_and_judge(tune_runs: Sequence[PlaylistRun], test_runs: Sequence[PlaylistRun], labels: tuple[str, ...],
                    base: DecisionParams, grid: Mapping[str, Sequence[Any]]) -> tuple[DecisionParams,
                                                                                       dict[str, dict[str, float]]]:
    result = tune_search([r.probs for r in tune_runs], [r.truth for r in tune_runs], labels, base,
                         levels=[r.rms_dbfs for r in tune_runs], conditions=[r.condition for r in tune_runs],
                         grid=grid)
    return result.params, score_runs(test_runs, decide_runs(test_runs, labels, result.params))


def _keep(metrics: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    return {cond: {k: m[k] for k in CURVE_KEYS if k in m} for cond, m in metrics.items()}


def hop_tradeoff(tune_runs: Sequence[PlaylistRun], test_runs: Sequence[PlaylistRun], labels: tuple[str, ...],
                 base: DecisionParams, grid: Mapping[str, Sequence[Any]],
                 multiples: Sequence[int] = (1, 2)) -> list[dict[str, Any]]:
    """Per hop multiple: the hop in seconds, windows a minute (the model's CPU scales with it), the rule tuned at
    that hop and its test metrics per condition, and the main constant's curve at that hop."""
    out = []
    for m in multiples:
        tune = [subsample(r, m) for r in tune_runs]
        test = [subsample(r, m) for r in test_runs]
        hop_s = test[0].truth.hop_s if test else float("nan")
        tuned, metrics = _tune_and_judge(tune, test, labels, base, grid)
        out.append({"every": m, "hop_s": hop_s, "windows_per_min": 60.0 / hop_s, "tuned": tuned.to_dict(),
                    "metrics": _keep(metrics), "curve": constant_curve(tune, test, labels, tuned, grid)})
    return out


def constant_curve(tune_runs: Sequence[PlaylistRun], test_runs: Sequence[PlaylistRun], labels: tuple[str, ...],
                   base: DecisionParams, grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Per value of the main constant (its grid row): that value held, the other constants tuned, test metrics."""
    if MAIN_CONSTANT not in grid:
        return []
    others = {k: v for k, v in grid.items() if k != MAIN_CONSTANT}
    out = []
    for value in grid[MAIN_CONSTANT]:
        start = dataclasses.replace(base, **{MAIN_CONSTANT: value})
        tuned, metrics = _tune_and_judge(tune_runs, test_runs, labels, start, others)
        out.append({MAIN_CONSTANT: value, "tuned": tuned.to_dict(), "metrics": _keep(metrics)})
    return out


__all__ = ["CURVE_KEYS", "MAIN_CONSTANT", "constant_curve", "hop_tradeoff", "subsample"]
