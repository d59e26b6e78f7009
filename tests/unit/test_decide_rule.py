"""The decision rule on synthetic probability streams: known switch -> known latency, no flapping."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from edge.decide.batch import decide_windows
from edge.decide.decider import Decider
from edge.decide.hmm import StickyFilter
from edge.decide.params import BASELINE, DecisionParams
from edge.decide.states import NOT_MUSIC, SILENCE, UNCERTAIN, published_options

LABELS = ("blues", "jazz", "metal", "not_music")
LOUD, QUIET = -20.0, -80.0


def stream(segments: list[tuple[str, int]], p_true: float = 0.6, odd_every: int = 0, odd_run: int = 3) -> np.ndarray:
    """Window probabilities: each segment favours its label with ``p_true``; if ``odd_every`` is set,
    ``odd_run`` windows in every ``odd_every`` favour the next label instead (a bridge, a solo)."""
    rows = []
    n = 0
    for label, count in segments:
        for _ in range(count):
            idx = LABELS.index(label)
            if odd_every and n % odd_every >= odd_every - odd_run:
                idx = (idx + 1) % len(LABELS)
            row = np.full(len(LABELS), (1 - p_true) / (len(LABELS) - 1))
            row[idx] = p_true
            rows.append(row)
            n += 1
    return np.asarray(rows, dtype=np.float32)


def states(probs: np.ndarray, params: DecisionParams, rms: list[float] | None = None) -> list[str]:
    levels = rms if rms is not None else [LOUD] * len(probs)
    return [d.state for d in decide_windows(probs, levels, LABELS, params)]


def changes(seq: list[str]) -> int:
    return sum(a != b for a, b in itertools.pairwise(seq))


def test_a_song_change_is_followed_within_a_few_hops_and_only_once() -> None:
    probs = stream([("blues", 60), ("metal", 60)])
    out = states(probs, DecisionParams())
    first_metal = out.index("metal")
    assert 60 <= first_metal <= 60 + 8, out[55:75]
    assert out[first_metal:] == ["metal"] * (120 - first_metal)
    assert set(out[10:60]) == {"blues"}


def test_odd_windows_inside_a_song_do_not_flap_the_published_genre() -> None:
    probs = stream([("jazz", 200)], odd_every=15)  # 3 windows in 15 point elsewhere
    hmm = states(probs, DecisionParams())
    assert changes(hmm[10:]) == 0 and hmm[-1] == "jazz"
    # The 5-window mean without hysteresis flaps on the same stream; the filter is what makes it steady.
    mean = states(probs, DecisionParams(rule="mean", min_confidence=0.0, hysteresis_windows=1))
    assert changes(mean[10:]) > changes(hmm[10:])


def test_the_belief_is_bounded_so_a_long_song_does_not_slow_the_next_switch() -> None:
    short = states(stream([("blues", 20), ("metal", 40)]), DecisionParams())
    long = states(stream([("blues", 2000), ("metal", 40)]), DecisionParams())
    assert long.index("metal") - 2000 <= short.index("metal") - 20 + 1


def test_silence_resets_the_evidence_and_is_published() -> None:
    probs = stream([("blues", 40), ("blues", 5), ("metal", 30)])
    rms = [LOUD] * 40 + [QUIET] * 5 + [LOUD] * 30
    out = states(probs, DecisionParams(hysteresis_windows=2), rms)
    assert out[40:45] == ["blues"] + [SILENCE] * 4  # silence, like any state, leads 2 hops first
    one = DecisionParams(hysteresis_windows=1)
    out = states(probs, one, rms)
    assert out[40:45] == [SILENCE] * 5
    # After the reset the new song needs no evidence against the old one: as fast as from a cold start.
    cold = states(stream([("metal", 30)]), one)
    assert out[45:].index("metal") == cold.index("metal")


def test_weak_evidence_is_uncertain_and_its_confidence_is_the_music_probability() -> None:
    flat = np.full((30, len(LABELS)), 0.25, dtype=np.float32)
    decisions = decide_windows(flat, [LOUD] * 30, LABELS, DecisionParams())
    assert {d.state for d in decisions} == {UNCERTAIN}
    assert decisions[-1].confidence == pytest.approx(0.75, abs=1e-6)  # three genres of four classes


def test_the_reject_class_is_published_as_not_music() -> None:
    out = states(stream([("not_music", 30)]), DecisionParams())
    assert out[-1] == NOT_MUSIC and "not_music" in published_options(LABELS)
    assert "unknown" not in published_options((*LABELS[:3], "unknown"))


def test_confidence_is_the_probability_of_what_is_published() -> None:
    d = decide_windows(stream([("jazz", 30)]), [LOUD] * 30, LABELS, DecisionParams())[-1]
    assert d.state == "jazz" and d.confidence == dict(d.top3)["jazz"] > 0.9


def test_baseline_rule_is_todays_mean_and_hysteresis() -> None:
    probs = stream([("blues", 20), ("metal", 20)], p_true=0.9)
    out = states(probs, BASELINE)
    # The 5-window mean turns to metal after 3 metal windows; hysteresis then needs 2 more hops.
    assert out.index("metal") == 20 + 3


def test_filter_posterior_stays_normalised_and_recovers_from_zeros() -> None:
    f = StickyFilter(3, 0.01, 1.0)
    for _ in range(500):
        post = f.update(np.array([1.0, 0.0, 0.0]))
    assert post.sum() == pytest.approx(1.0) and post[0] > 0.99
    for _ in range(30):
        post = f.update(np.array([0.0, 1.0, 0.0]))
    assert post[1] > 0.99


def test_decider_reset_keeps_what_is_published() -> None:
    d = Decider(LABELS, DecisionParams())
    for p in stream([("jazz", 20)]):
        d.update(p)
    d.reset()
    assert d.published == "jazz" and d.belief is None


def test_out_of_range_params_name_the_key() -> None:
    with pytest.raises(ValueError, match="switch_per_hop"):
        DecisionParams(switch_per_hop=0.0)
    with pytest.raises(ValueError, match="unknown decision key"):
        DecisionParams.from_dict({"bogus": 1})
    assert DecisionParams.from_dict(DecisionParams(temperature=3.0).to_dict()).temperature == 3.0


def _first(out: list[str], state: str, after: int) -> int:
    """Hops after ``after`` until ``state`` is first published."""
    return out[after:].index(state)


def test_talk_after_a_long_song_is_not_music_sooner_with_the_talk_prior() -> None:
    # A long, sure song, then talk the model is as sure of: the symmetric filter lets the song's lead carry
    # the genre into the talk; the music -> not-music prior caps that lead.
    probs = stream([("jazz", 200), ("not_music", 20)], p_true=0.9)
    symmetric = states(probs, DecisionParams(switch_per_hop=0.005, temperature=3.0))
    talk_prior = states(probs, DecisionParams(switch_per_hop=0.005, temperature=3.0, reject_switch_per_hop=0.05))
    assert symmetric[199] == talk_prior[199] == "jazz"
    assert _first(talk_prior, NOT_MUSIC, 200) < _first(symmetric, NOT_MUSIC, 200)
    assert _first(talk_prior, NOT_MUSIC, 200) <= 3  # two windows of hysteresis and one to turn


def test_a_sure_not_music_window_resets_the_evidence() -> None:
    probs = stream([("jazz", 200), ("not_music", 20)], p_true=0.9)
    base = DecisionParams(switch_per_hop=0.005, temperature=3.0)
    plain = states(probs, base)
    reset = states(probs, DecisionParams(switch_per_hop=0.005, temperature=3.0, reject_reset=0.8))
    assert _first(reset, NOT_MUSIC, 200) < _first(plain, NOT_MUSIC, 200)


def test_talk_prior_keeps_a_steady_song_steady_through_odd_windows() -> None:
    # One window in 15 leans to not-music (a spoken intro, a quiet bar): neither lever may flap the song.
    for params in (DecisionParams(reject_switch_per_hop=0.05), DecisionParams(reject_reset=0.9)):
        probs = stream([("jazz", 150)], p_true=0.7, odd_every=15, odd_run=1)
        probs[::15] = np.array([0.1, 0.25, 0.05, 0.6])  # not-music, but not sure of it
        out = states(probs, params)
        assert changes(out[10:]) == 0 and out[-1] == "jazz", params


def test_talk_levers_do_nothing_without_a_reject_class() -> None:
    labels = ("blues", "jazz", "metal")
    probs = np.tile(np.array([0.1, 0.8, 0.1]), (30, 1))
    a = [d.state for d in decide_windows(probs, np.full(30, LOUD), labels, DecisionParams())]
    b = [d.state for d in decide_windows(probs, np.full(30, LOUD), labels,
                                         DecisionParams(reject_switch_per_hop=0.1, reject_reset=0.6))]
    assert a == b


def test_filter_with_talk_prior_stays_normalised() -> None:
    f = StickyFilter(4, 0.01, 2.0, reject_index=3, reject_switch=0.1)
    for _ in range(300):
        post = f.update(np.array([0.97, 0.01, 0.01, 0.01]))
    assert post.sum() == pytest.approx(1.0)
    # The lead over not-music is bounded by the talk prior, not by the genre switch prior.
    assert np.log(post[0] / post[3]) < np.log(post[0] / post[1])
