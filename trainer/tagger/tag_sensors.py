"""The vocals and danceable sensors' thresholds, chosen on the training clips' tag scores, judged on held-out clips.

The tag scores are MSD_musicnn's own (no head is fitted on them), so they are out of sample for every clip the
tagger did not train on. GTZAN has no vocals or mood labels; genres serve as proxies (issue 26): classical is
instrumental, pop / hip-hop / country / disco / reggae are sung; disco, hip-hop and pop are danceable, classical,
jazz and blues are not. A clip's score is the mean log-odds of its windows, as the sensor's running average is
over a song; the threshold maximises balanced accuracy on the training clips, clean and in their room copies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from edge.decide.tags import TagSensorParams, log_odds
from trainer.data.plan import CLEAN
from trainer.tagger.export import TAGS
from trainer.tagger.fit import TaggerData

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# name -> (sensor states, proxy positives, proxy negatives)
SENSORS: dict[str, tuple[dict[str, str], tuple[str, ...], tuple[str, ...]]] = {
    "vocals": ({"tag": "instrumental", "on": "instrumental", "off": "vocal", "idle": "none"},
               ("classical",), ("pop", "hiphop", "country", "disco", "reggae")),
    "danceable": ({"tag": "dance", "on": "danceable", "off": "not_danceable", "idle": "none"},
                  ("disco", "hiphop", "pop"), ("classical", "jazz", "blues")),
}


def clip_log_odds(data: TaggerData, idx: Sequence[int] | IntArray, variant: str, tag: str) -> FloatArray:
    """Mean log-odds of ``tag`` over each clip's windows in ``variant``."""
    k = TAGS.index(tag)
    out = []
    for i in idx:
        out.append(float(np.mean(log_odds(data.emb.get(data.clip_ids[i], variant)[:, k]))))
    return np.asarray(out)


def _proxy(data: TaggerData, idx: Sequence[int] | IntArray, positives: Sequence[str],
           negatives: Sequence[str]) -> tuple[list[int], IntArray]:
    keep, truth = [], []
    for i in idx:
        genre = data.labels[int(data.y[i])]
        if genre in positives or genre in negatives:
            keep.append(int(i))
            truth.append(int(genre in positives))
    return keep, np.asarray(truth, dtype=np.int64)


def best_threshold(scores: FloatArray, truth: IntArray) -> float:
    """The threshold (midway between two scores) with the best balanced accuracy of ``scores >= t``."""
    values = np.unique(scores)
    cands = np.concatenate([[values[0] - 1.0], (values[:-1] + values[1:]) / 2, [values[-1] + 1.0]])
    return float(max(cands, key=lambda t: (balanced_accuracy(scores >= t, truth), -abs(t))))


def balanced_accuracy(pred: npt.NDArray[np.bool_], truth: IntArray) -> float:
    rates = [float(np.mean(pred[truth == c] == bool(c))) for c in (0, 1) if np.any(truth == c)]
    return float(np.mean(rates)) if rates else float("nan")


def auc(scores: FloatArray, truth: IntArray) -> float:
    """ROC AUC by ranks (ties count half)."""
    pos, neg = scores[truth == 1], scores[truth == 0]
    if not pos.size or not neg.size:
        return float("nan")
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(wins / (pos.size * neg.size))


def fit_thresholds(data: TaggerData, train_idx: IntArray, copies: Sequence[str]) -> dict[str, TagSensorParams]:
    """Each sensor's params, its threshold fitted on the training clips' proxies (clean and ``copies``)."""
    params: dict[str, TagSensorParams] = {}
    for name, (states, positives, negatives) in SENSORS.items():
        train, y_train = _proxy(data, train_idx, positives, negatives)
        scores = np.concatenate([clip_log_odds(data, train, v, states["tag"]) for v in (CLEAN, *copies)])
        threshold = best_threshold(scores, np.tile(y_train, 1 + len(copies)))
        params[name] = TagSensorParams(states["tag"], states["on"], states["off"], states["idle"],
                                       threshold=round(threshold, 3))
    return params


def fit_sensors(data: TaggerData, train_idx: IntArray, test_idx: IntArray, copies: Sequence[str],
                conditions: Sequence[str]) -> tuple[dict[str, TagSensorParams], dict[str, Any]]:
    """Each sensor's params (threshold from the training clips) and its report section (held-out clips)."""
    params = fit_thresholds(data, train_idx, copies)
    report: dict[str, Any] = {}
    for name, (states, positives, negatives) in SENSORS.items():
        threshold = params[name].threshold
        test, y_test = _proxy(data, test_idx, positives, negatives)
        by_cond = {}
        for cond in (CLEAN, *conditions):
            s = clip_log_odds(data, test, CLEAN if cond == CLEAN else f"eval/{cond}", states["tag"])
            by_cond[cond] = {"accuracy": float(np.mean((s >= threshold) == (y_test == 1))),
                             "balanced_accuracy": balanced_accuracy(s >= threshold, y_test), "auc": auc(s, y_test)}
        report[name] = {"tag": states["tag"], "positives": list(positives), "negatives": list(negatives),
                        "threshold_log_odds": threshold,
                        "train_clips": len(_proxy(data, train_idx, positives, negatives)[0]),
                        "test_clips": len(test), "held_out": by_cond}
    return params, report


def tags_meta(params: Mapping[str, TagSensorParams]) -> dict[str, Any]:
    """model.json's ``model.tags``: the second output's tag names and each sensor's params."""
    return {"output": 1, "names": list(TAGS), "sensors": {k: p.to_dict() for k, p in params.items()}}
