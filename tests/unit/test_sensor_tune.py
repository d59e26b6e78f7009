"""The tag sensors' averaging time and band, tuned on playlists: steadier than the first constants on noisy window
scores, still right on the proxy songs."""

from __future__ import annotations

import numpy as np

from edge.decide.tags import TagSensorParams
from trainer.evaluate.playlist_eval import PlaylistRun
from trainer.evaluate.stream_metrics import Truth, TruthSegment
from trainer.tagger.sensor_tune import judge_sensor, tune_sensor
from trainer.tagger.tag_sensors import READABLE

HOP = 1.5
K = READABLE.index("head/instrumental")
BASE = TagSensorParams("head/instrumental", "instrumental", "vocal", "none", hops=8.0, band=0.5)


def _run(seed: int) -> tuple[PlaylistRun, np.ndarray, list[str]]:
    """Classical, then pop, then rock (no proxy): 90 s each; the head's log-odds +3 / -3 / 0 with noise of 3."""
    segs = (TruthSegment("classical", 0.0, 90.0), TruthSegment("pop", 90.0, 180.0), TruthSegment("rock", 180.0, 270.0))
    times = np.arange(1, 180) * HOP
    truth = Truth.build(segs, times, HOP)
    rng = np.random.default_rng(seed)
    mean = np.select([times < 90, times < 180], [3.0, -3.0], 0.0)
    z = mean + 3.0 * rng.standard_normal(times.size)
    scores = np.full((times.size, len(READABLE)), 0.5, dtype=np.float32)
    scores[:, K] = 1 / (1 + np.exp(-z))
    published = [str(label) for label in truth.labels]
    run = PlaylistRun(None, "clean", np.zeros((times.size, 2), np.float32), np.zeros(times.size), truth)  # type: ignore[arg-type]
    return run, scores, published


def test_tuning_trades_the_first_constants_flapping_for_a_steadier_sensor_that_stays_right() -> None:
    parts = [_run(s) for s in range(4)]
    runs, scores, states = ([p[i] for p in parts] for i in range(3))
    tuned, record = tune_sensor(BASE, READABLE, runs, scores, states, ("classical",), ("pop",))
    before = record["untuned"]["metrics"]
    after = judge_sensor(tuned, READABLE, runs, scores, states, ("classical",), ("pop",))
    assert after == record["metrics"]
    assert after["within_song_changes_per_min"] < before["within_song_changes_per_min"] / 2, (before, after)
    assert after["proxy_settled_accuracy"] >= 0.9, after
    assert (tuned.hops, tuned.band) != (BASE.hops, BASE.band)
    assert record["chosen"] == {"hops": tuned.hops, "band": tuned.band, "latch": tuned.latch}
    assert isinstance(tuned.latch, int)  # a grid of floats must not write "latch": 4.0 into model.json


def test_a_latch_is_chosen_where_an_unsure_song_wanders_across_the_band() -> None:
    # The rock third of each playlist has no proxy answer and a score that wanders around the threshold: only the
    # latch keeps it from flapping at no cost on the proxies, so the tuner takes one when it may.
    parts = [_run(s) for s in range(4)]
    runs, scores, states = ([p[i] for p in parts] for i in range(3))
    grid = {"hops": (4.0,), "band": (0.5,), "latch": (0, 4)}
    tuned, record = tune_sensor(BASE, READABLE, runs, scores, states, ("classical",), ("pop",), grid)
    unlatched = judge_sensor(BASE.__class__(**{**BASE.to_dict(), "hops": 4.0}), READABLE, runs, scores, states,
                             ("classical",), ("pop",))
    assert tuned.latch == 4, record
    assert record["metrics"]["within_song_changes_per_min"] < unlatched["within_song_changes_per_min"] / 2
