"""The vocals/danceable sensors: steady within a song, quick at a change, idle without music; thresholds fitted
on proxies by balanced accuracy."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from edge.bundle import bundle_tags
from edge.decide.tags import TagSensor, TagSensorParams, log_odds, sensor_params
from edge.errors import ModelBundleError
from trainer.tagger.tag_sensors import auc, balanced_accuracy, best_threshold

TAGS = ("dance", "instrumental", "rock")
VOCALS = TagSensorParams("instrumental", "instrumental", "vocal", "none", threshold=0.0, band=0.5, hops=8,
                         min_windows=3)


def _scores(means: list[tuple[float, int]], noise: float, seed: int = 0) -> list[np.ndarray]:
    """Per-window tag scores whose 'instrumental' log-odds are ``mean`` + noise, segment by segment."""
    rng = np.random.default_rng(seed)
    out = []
    for mean, n in means:
        for _ in range(n):
            z = mean + noise * rng.standard_normal()
            out.append(np.array([0.5, 1 / (1 + np.exp(-z)), 0.5]))
    return out


def _run(sensor: TagSensor, scores: list[np.ndarray]) -> list[str]:
    return [sensor.update(s) for s in scores]


def changes(seq: list[str]) -> int:
    return sum(a != b for a, b in itertools.pairwise(seq))


def test_a_steady_song_with_noisy_windows_does_not_flap() -> None:
    # A sung song whose windows scatter widely around a clear mean: one state, from the third window on.
    out = _run(TagSensor(VOCALS, TAGS), _scores([(-2.0, 200)], noise=2.0))
    assert out[:2] == ["none", "none"] and set(out[2:]) == {"vocal"}


def test_a_change_of_song_is_followed_within_a_few_hops_and_once() -> None:
    out = _run(TagSensor(VOCALS, TAGS), _scores([(-3.0, 60), (3.0, 60)], noise=0.5))
    first = out.index("instrumental")
    assert 60 < first <= 60 + 8 and changes(out[3:]) == 1


def test_silence_or_not_music_resets_to_idle_and_the_next_song_starts_afresh() -> None:
    s = TagSensor(VOCALS, TAGS)
    _run(s, _scores([(3.0, 50)], noise=0.3))
    assert s.state == "instrumental"
    assert s.reset() == "none" and s.mean is None
    out = _run(s, _scores([(-3.0, 5)], noise=0.3))
    assert out == ["none", "none", "vocal", "vocal", "vocal"]  # no long song's average to outvote


LATCHED = TagSensorParams(**{**VOCALS.to_dict(), "latch": 5})


def test_a_latched_state_outlasts_a_contrary_stretch_of_the_same_song() -> None:
    s = TagSensor(LATCHED, TAGS)
    before = [s.step("jazz", x) for x in _scores([(3.0, 10)], noise=0.3)]
    assert before[-1] == "instrumental" and s.latched
    # A sung-sounding minute of the same song, with "uncertain" hops in it: the state stays.
    during = [s.step("uncertain" if i % 4 == 0 else "jazz", x)
              for i, x in enumerate(_scores([(-3.0, 40)], noise=0.3, seed=1))]
    assert set(during) == {"instrumental"}
    # Without the latch the same windows turn it.
    free = TagSensor(VOCALS, TAGS)
    assert [free.step("jazz", x) for x in _scores([(3.0, 10), (-3.0, 40)], noise=0.3)][-1] == "vocal"


def test_a_genre_change_releases_the_latch_and_the_state_follows_the_average() -> None:
    s = TagSensor(LATCHED, TAGS)
    _ = [s.step("classical", x) for x in _scores([(3.0, 10), (-3.0, 10)], noise=0.3)]
    assert s.state == "instrumental" and s.latched
    # The published genre moves on: the evidence of the last hops (averaged all along) decides at once.
    assert s.step("pop", _scores([(-3.0, 1)], noise=0.0)[0]) == "vocal" and not s.latched


def test_silence_clears_the_latch_with_the_evidence() -> None:
    s = TagSensor(LATCHED, TAGS)
    _ = [s.step("jazz", x) for x in _scores([(3.0, 10)], noise=0.3)]
    assert s.latched and s.step("silence", _scores([(0.0, 1)], noise=0.0)[0]) == "none"
    assert not s.latched and s.genre is None and s.held == 0
    out = [s.step("jazz", x) for x in _scores([(-3.0, 4)], noise=0.3)]
    assert out == ["none", "none", "vocal", "vocal"]


def test_params_are_checked_and_round_trip() -> None:
    assert sensor_params({"vocals": VOCALS.to_dict()}) == {"vocals": VOCALS}
    with pytest.raises(ValueError, match="three different states"):
        TagSensorParams("dance", "on", "on", "none")
    with pytest.raises(ValueError, match="latch must be"):
        TagSensorParams("dance", "on", "off", "none", latch=-1)
    old = {k: v for k, v in VOCALS.to_dict().items() if k != "latch"}  # a bundle from before the latch
    assert TagSensorParams.from_dict(old).latch == 0
    with pytest.raises(ValueError, match="unknown tag sensor key"):
        TagSensorParams.from_dict({**VOCALS.to_dict(), "colour": "red"})
    with pytest.raises(ValueError, match="not among the model's tags"):
        TagSensor(TagSensorParams("party", "on", "off", "none"), TAGS)
    assert log_odds(1.0) == pytest.approx(-log_odds(0.0)) and np.isfinite(log_odds(1.0))


def test_threshold_separates_the_proxies_and_auc_counts_ranks() -> None:
    scores = np.array([-3.0, -2.0, -1.5, 1.0, 2.0, 2.5])
    truth = np.array([0, 0, 0, 1, 1, 1])
    t = best_threshold(scores, truth)
    assert -1.5 < t < 1.0 and balanced_accuracy(scores >= t, truth) == 1.0
    assert auc(scores, truth) == 1.0 and auc(-scores, truth) == 0.0
    assert auc(np.zeros(4), np.array([0, 1, 0, 1])) == 0.5
    # Unbalanced proxies: balanced accuracy, not plain accuracy, picks the threshold.
    many_neg = np.concatenate([np.linspace(-3, 0.5, 50), [0.2, 1.0]])
    y = np.concatenate([np.zeros(50, np.int64), [1, 1]])
    assert balanced_accuracy(many_neg >= best_threshold(many_neg, y), y) > 0.9


def test_a_bundles_tag_section_must_fit_the_models_outputs(tmp_path: Path) -> None:
    doc = {"tags": {"output": 1, "names": list(TAGS), "sensors": {"vocals": VOCALS.to_dict()}}}
    tags = bundle_tags(doc, tmp_path, (11, 3))
    assert tags is not None and tags.names == TAGS and tags.sensors["vocals"] == VOCALS
    assert bundle_tags({}, tmp_path, (11,)) is None  # the lite bundle: no tags, no sensors
    with pytest.raises(ModelBundleError, match="output 1 should hold 3 scores, but the model's outputs are \\[11\\]"):
        bundle_tags(doc, tmp_path, (11,))
    with pytest.raises(ModelBundleError, match="unknown tags"):
        bundle_tags({"tags": {**doc["tags"], "names": ["a", "b", "c"]}}, tmp_path, (11, 3))


def test_sensor_heads_are_a_third_output_the_sensors_read_after_the_tags(tmp_path: Path) -> None:
    head = TagSensorParams("head/instrumental", "instrumental", "vocal", "none")
    doc = {"tags": {"output": 1, "names": list(TAGS), "heads": {"output": 2, "names": ["head/instrumental"]},
                    "sensors": {"vocals": head.to_dict()}}}
    tags = bundle_tags(doc, tmp_path, (11, 3, 1))
    assert tags is not None and tags.readable == (*TAGS, "head/instrumental")
    outputs = {1: np.array([0.1, 0.2, 0.3], np.float32), 2: np.array([0.99], np.float32)}
    scores = tags.scores(outputs.__getitem__)
    assert scores.tolist() == pytest.approx([0.1, 0.2, 0.3, 0.99])
    sensor = TagSensor(head, tags.readable)
    assert [sensor.update(scores) for _ in range(3)][-1] == "instrumental"
    with pytest.raises(ModelBundleError, match="output 2 should hold 1 scores"):
        bundle_tags(doc, tmp_path, (11, 3))  # a bundle exported without the heads
    with pytest.raises(ModelBundleError, match="unknown tags"):
        bundle_tags({"tags": {**doc["tags"], "heads": None}}, tmp_path, (11, 3))
