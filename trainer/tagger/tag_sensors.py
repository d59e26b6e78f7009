"""The vocals and danceable sensors: a small head per sensor on the tagger's embedding, judged on held-out clips.

GTZAN has no vocals or mood labels; genres serve as proxies (issue 26): classical is instrumental, pop / hip-hop /
country / disco / reggae are sung; disco, hip-hop and pop are danceable, classical, jazz and blues are not.

MSD_musicnn's own ``instrumental`` and ``dance`` tags were the first sensors, and the report keeps them as the
comparison row: ``dance`` did not survive a room (held-out AUC 0.51 in the typical room). So each sensor is now a
class-balanced logistic head on the same 1706-value embedding the genre head reads, fitted on the proxy clips'
windows clean and in the training copies (rooms and wide noise), as the genre head is, and exported as the
bundle's third output. Class-balanced, so log-odds 0 is the balanced decision: the sensor's threshold. A clip's
score is the mean log-odds of its windows, as the sensor's running average is over a song.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from edge.decide.tags import TagSensorParams, log_odds
from trainer.data.plan import CLEAN
from trainer.evaluate.scores import scored_variant
from trainer.tagger.export import N_TAGS, TAGS
from trainer.tagger.fit import TaggerData, embedding_of, training_windows
from trainer.teacher.head import LinearHead, fit_arrays

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Rows = npt.NDArray[np.float32]  # embedding-model rows: 50 tag scores, then the embedding

# name -> (sensor states and the raw tag it used to read, proxy positives, proxy negatives)
SENSORS: dict[str, tuple[dict[str, str], tuple[str, ...], tuple[str, ...]]] = {
    "vocals": ({"tag": "instrumental", "on": "instrumental", "off": "vocal", "idle": "none"},
               ("classical",), ("pop", "hiphop", "country", "disco", "reggae")),
    "danceable": ({"tag": "dance", "on": "danceable", "off": "not_danceable", "idle": "none"},
                  ("disco", "hiphop", "pop"), ("classical", "jazz", "blues")),
}
HEAD_NAMES = tuple(f"head/{states['on']}" for states, _, _ in SENSORS.values())  # the bundle's third output
READABLE = (*TAGS, *HEAD_NAMES)  # what a sensor may read: edge.decide.tags.Tags.readable


def _proxy(data: TaggerData, idx: Sequence[int] | IntArray, positives: Sequence[str],
           negatives: Sequence[str]) -> tuple[list[int], IntArray]:
    keep, truth = [], []
    for i in idx:
        genre = data.labels[int(data.y[i])]
        if genre in positives or genre in negatives:
            keep.append(int(i))
            truth.append(int(genre in positives))
    return keep, np.asarray(truth, dtype=np.int64)


def fit_sensor_heads(data: TaggerData, train_idx: IntArray, copies: Sequence[str], seed: int,
                     c: float) -> dict[str, LinearHead]:
    """Each sensor's two-class head (class 1 = the sensor's ``on``) on its proxy training clips' windows."""
    heads = {}
    for k, (name, (_, positives, negatives)) in enumerate(SENSORS.items()):
        keep, truth = _proxy(data, train_idx, positives, negatives)
        on = dict(zip(keep, truth.tolist(), strict=True))
        x, y = training_windows(data, keep, copies, lambda i, _: on[i])  # noqa: B023 (called here, not later)
        heads[name] = fit_arrays(x, y, 2, seed + k, c).linear()
    return heads


def readable_scores(rows: Rows, heads: Mapping[str, LinearHead]) -> Rows:
    """(n, len(READABLE)): the tag scores, then each head's probability of ``on``, per embedding-model row."""
    probs = [h.predict(embedding_of(rows))[:, 1:] for h in heads.values()]
    out: Rows = np.concatenate([rows[:, :N_TAGS], *probs], axis=1).astype(np.float32)
    return out


def head_sensor_params(heads: Mapping[str, LinearHead]) -> dict[str, TagSensorParams]:
    """Each sensor reading its head, at the balanced decision (log-odds 0)."""
    return {name: TagSensorParams(f"head/{states['on']}", states["on"], states["off"], states["idle"], threshold=0.0)
            for name, (states, _, _) in SENSORS.items() if name in heads}


def clip_scores(data: TaggerData, idx: Sequence[int], variant: str, score: Callable[[Rows], Rows]) -> FloatArray:
    """Mean log-odds over each clip's windows in ``variant`` of ``score(rows)`` (one value per window)."""
    return np.asarray([float(np.mean(log_odds(score(data.emb.get(data.clip_ids[i], variant)))))
                       for i in idx])


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


def _judged(scores: FloatArray, truth: IntArray, threshold: float) -> dict[str, float]:
    return {"accuracy": float(np.mean((scores >= threshold) == (truth == 1))),
            "balanced_accuracy": balanced_accuracy(scores >= threshold, truth), "auc": auc(scores, truth)}


def fit_sensors(data: TaggerData, train_idx: IntArray, test_idx: IntArray, copies: Sequence[str],
                conditions: Sequence[str], *, seed: int, c: float) -> tuple[dict[str, LinearHead],
                                                                         dict[str, TagSensorParams], dict[str, Any]]:
    """The sensor heads and params (from the training clips) and the report section (held-out clips): each
    sensor's head, and the raw tag it replaced with a threshold fitted on the same training clips."""
    heads = fit_sensor_heads(data, train_idx, copies, seed, c)
    params = head_sensor_params(heads)
    report: dict[str, Any] = {}
    for name, (states, positives, negatives) in SENSORS.items():
        head, k = heads[name], TAGS.index(states["tag"])
        train, y_train = _proxy(data, train_idx, positives, negatives)
        test, y_test = _proxy(data, test_idx, positives, negatives)

        def head_score(rows: Rows, h: LinearHead = head) -> Rows:
            out: Rows = h.predict(embedding_of(rows))[:, 1]
            return out

        def tag_score(rows: Rows, j: int = k) -> Rows:
            out: Rows = rows[:, j]
            return out

        raw = np.concatenate([clip_scores(data, train, v, tag_score) for v in (CLEAN, *copies)])
        raw_threshold = best_threshold(raw, np.tile(y_train, 1 + len(copies)))
        by_cond, by_cond_raw = {}, {}
        for cond in (CLEAN, *conditions):
            variant = scored_variant(cond)
            by_cond[cond] = _judged(clip_scores(data, test, variant, head_score), y_test, params[name].threshold)
            by_cond_raw[cond] = _judged(clip_scores(data, test, variant, tag_score), y_test, raw_threshold)
        report[name] = {"reads": params[name].tag, "positives": list(positives), "negatives": list(negatives),
                        "threshold_log_odds": params[name].threshold, "train_clips": len(train),
                        "test_clips": len(test), "held_out": by_cond,
                        "raw_tag": {"tag": states["tag"], "threshold_log_odds": round(raw_threshold, 3),
                                    "held_out": by_cond_raw}}
    return heads, params, report


def tags_meta(params: Mapping[str, TagSensorParams], heads: Mapping[str, LinearHead]) -> dict[str, Any]:
    """model.json's ``model.tags``: the tag output (1) and names, the sensor heads' output (2) and names, and each
    sensor's params."""
    if list(heads) != list(SENSORS):
        raise ValueError(f"the bundle's third output holds {list(SENSORS)}, got heads {list(heads)}")
    return {"output": 1, "names": list(TAGS), "heads": {"output": 2, "names": list(HEAD_NAMES)},
            "sensors": {k: p.to_dict() for k, p in params.items()}}
