"""Stream metrics on hand-made streams whose values are worked out by hand in the comments."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edge.decide.states import NOT_MUSIC, SILENCE, UNCERTAIN
from trainer.evaluate.stream_metrics import (
    BOUNDARY,
    Truth,
    TruthSegment,
    combine,
    count,
    metrics,
    nest,
    stream_metrics,
)

# jazz [0, 30), a 2 s gap, rock [32, 62), then TV talk [62, 82) after a cut; one hop per second at t = 0..81.
SEGMENTS = (TruthSegment("jazz", 0.0, 30.0), TruthSegment("rock", 32.0, 62.0), TruthSegment(NOT_MUSIC, 62.0, 82.0))
TIMES = np.arange(82, dtype=np.float64)


def _published() -> list[str]:
    out = [UNCERTAIN] * 5 + ["jazz"] * 25  # t 0..29: warm-up, then right
    out += ["jazz"] * 2  # t 30, 31: the gap (boundary, not scored)
    out += ["jazz"] * 8 + ["rock"] * 10 + ["pop"] + ["rock"] * 11  # t 32..61: rock recognised at t 40, flap at 50
    out += ["rock"] * 8 + [NOT_MUSIC] * 12  # t 62..81: the old genre lingers 8 s into the talk
    assert len(out) == 82
    return out


def test_truth_labels_gap_as_boundary_and_counts_time_since_onset() -> None:
    truth = Truth.build(SEGMENTS, TIMES, 1.0)
    assert truth.labels[29] == "jazz" and truth.labels[30] == BOUNDARY and truth.labels[31] == BOUNDARY
    assert truth.labels[32] == "rock" and truth.labels[62] == NOT_MUSIC
    assert truth.since_onset_s[42] == 10.0 and math.isnan(truth.since_onset_s[30])


def test_hand_made_stream_gives_the_hand_computed_metrics() -> None:
    m = stream_metrics(Truth.build(SEGMENTS, TIMES, 1.0), _published())
    # 80 scored hops (82 minus the 2 gap hops); right: jazz 25 + rock 21 + not_music 12 = 58.
    assert m["time_accuracy"] == pytest.approx(58 / 80)
    # Settled (>= 10 s after onset): jazz t 10..29 (20, all right), rock t 42..61 (20, one pop), talk t 72..81 (10).
    assert m["settled_accuracy"] == pytest.approx(49 / 50)
    # Changes: t 5, 40, 50, 51, 70 over 82 hops of 1 s.
    assert m["changes_per_min"] == pytest.approx(5 / (82 / 60))
    # Within a song: only the flap at t 50 and back at 51 (t 40 is 8 s after onset), over 40 settled song hops.
    assert m["within_song_changes_per_min"] == pytest.approx(2 / (40 / 60))
    # Latency: jazz 5 s (first hop at t 5), rock 8 s (onset 32, first rock at 40); TV talk is not a song.
    assert m["switch_latency_s.median"] == pytest.approx(6.5)
    assert m["switch_latency_s.p90"] == pytest.approx(5 + 0.9 * 3)
    # 60 music hops, 5 of them uncertain; 20 not-music hops, 8 of them still "rock".
    assert m["unknown_share_music"] == pytest.approx(5 / 60)
    assert m["genre_share_not_music"] == pytest.approx(8 / 20)


def test_crossfade_overlap_is_a_boundary_and_latency_runs_from_the_new_onset() -> None:
    segs = (TruthSegment("blues", 0.0, 30.0), TruthSegment("metal", 27.0, 57.0))  # 3 s crossfade
    times = np.arange(57, dtype=np.float64)
    truth = Truth.build(segs, times, 1.0)
    assert [truth.labels[t] for t in (26, 27, 29, 30)] == ["blues", BOUNDARY, BOUNDARY, "metal"]
    published = ["blues"] * 31 + ["metal"] * 26  # metal published from t 31: 4 s after its onset at 27
    m = stream_metrics(truth, published)
    assert m["switch_latency_s.median"] == pytest.approx(2.0)  # median of blues 0 s and metal 4 s
    # 54 scored hops (t 27..29 overlap); t 30 is metal but still says blues.
    assert m["time_accuracy"] == pytest.approx(53 / 54) and m["changes_per_min"] == pytest.approx(1 / (57 / 60))


def test_a_song_never_recognised_counts_its_length_and_same_genre_is_no_switch() -> None:
    segs = (TruthSegment("pop", 0.0, 20.0), TruthSegment("pop", 20.0, 40.0), TruthSegment("reggae", 40.0, 70.0))
    truth = Truth.build(segs, np.arange(70, dtype=np.float64), 1.0)
    published = ["pop"] * 45 + [SILENCE] * 25  # reggae never published
    m = stream_metrics(truth, published)
    # Switches: the first pop (0 s) and reggae (never: its 30 s length); pop -> pop is not a switch.
    assert sorted(count(truth, published).latencies_s) == [0.0, 30.0]
    assert m["switch_latency_s.median"] == pytest.approx(15.0)
    assert m["unknown_share_music"] == pytest.approx(25 / 70)
    assert math.isnan(m["genre_share_not_music"])  # no not-music time: not measured, not zero


def test_pooling_weights_streams_by_their_hops_not_by_stream() -> None:
    short = Truth.build((TruthSegment("jazz", 0.0, 10.0),), np.arange(10, dtype=np.float64), 1.0)
    long = Truth.build((TruthSegment("rock", 0.0, 30.0),), np.arange(30, dtype=np.float64), 1.0)
    pooled = metrics(combine([count(short, ["jazz"] * 10), count(long, ["pop"] * 30)]))
    assert pooled["time_accuracy"] == pytest.approx(10 / 40)  # not the mean of 1.0 and 0.0
    assert pooled["changes_per_min"] == 0.0  # the join between two streams is no change


def test_mismatched_lengths_are_an_error_and_nest_groups_latency() -> None:
    truth = Truth.build(SEGMENTS, TIMES, 1.0)
    with pytest.raises(ValueError, match="82 hops"):
        count(truth, ["jazz"] * 3)
    nested = nest(stream_metrics(truth, _published()))
    latency = nested["switch_latency_s"]
    assert isinstance(latency, dict) and set(latency) == {"median", "p90"}
    assert "time_accuracy" in nested and "switch_latency_s.median" not in nested
