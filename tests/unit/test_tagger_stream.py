"""The tagger's out-of-sample rule tuning: which clips each cross-fitted head may see, and no clip both tuned on
and judged on. Real playlists of synthesised clips, the edge front end, and a stand-in for the embedding model
(a fixed function of the window), so the test is about the split, not about musicnn."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import soundfile as sf

from edge.decide.params import DecisionParams
from edge.decide.tags import TagSensorParams
from edge.spec import musicnn_spec
from trainer.data.dataset import Clip
from trainer.data.split import grouped_folds
from trainer.evaluate.playlist_eval import PlaylistRun, decoded_clips, judge, playlist_runs
from trainer.evaluate.tradeoff import hop_tradeoff, subsample
from trainer.model.recipes import get_recipe
from trainer.tagger.embed import WindowEmbeddings
from trainer.tagger.export import N_TAGS, TAGS
from trainer.tagger.fit import TaggerData, fit
from trainer.tagger.stream import CROSSFIT, crossfit_tune_runs, head_predict, sensor_judged

GENRES = ("blues", "jazz", "not_music")
DIM = 8  # the stand-in embedding's width


def _embed(x: np.ndarray) -> np.ndarray:
    """Rows shaped like the embedding model's: 50 tag scores, then an 'embedding' (window means of 8 bands)."""
    emb = x.mean(axis=1)[:, :: x.shape[2] // DIM][:, :DIM]
    return np.concatenate([np.zeros((x.shape[0], N_TAGS), np.float32), emb], axis=1).astype(np.float32)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[TaggerData, list[str]]:
    root = tmp_path_factory.mktemp("clips")
    spec = musicnn_spec(GENRES, 1.5)
    rng = np.random.default_rng(0)
    clips, groups, rows = [], [], {}
    t = np.arange(24 * spec.sample_rate) / spec.sample_rate  # songs long enough to settle (10 s)
    for i in range(18):
        genre = GENRES[i % 3]
        tone = 220.0 * (1 + i % 3) * (1 + 0.01 * i)
        audio = (0.2 * np.sin(2 * np.pi * tone * t) + 0.02 * rng.standard_normal(t.size)).astype(np.float32)
        path = root / f"{genre}.{i:05d}.wav"
        sf.write(path, audio, spec.sample_rate)
        clips.append(Clip(f"{genre}.{i:05d}", genre, path, f"{i:064x}"))
        groups.append(f"artist{i // 2}")  # two clips an artist: an artist must never straddle a split
        for variant in ("clean", "aug/1"):
            rows[(clips[-1].clip_id, variant)] = rng.standard_normal((4, N_TAGS + DIM)).astype(np.float32) + i % 3
    y = np.array([GENRES.index(c.genre) for c in clips], dtype=np.int64)
    return TaggerData(clips, GENRES, y, WindowEmbeddings(rows, 0, len(rows), {}), spec), groups


def test_each_groups_tuning_playlists_hold_only_its_own_clips_and_artists(
        data: tuple[TaggerData, list[str]]) -> None:
    d, groups = data
    train_idx = np.arange(len(d.clips), dtype=np.int64)
    runs = crossfit_tune_runs(get_recipe("tagger"), d, train_idx, groups, ["aug/1"], embed=_embed, seed=3,
                              cache_dir=None, conditions=("clean",))
    inner = grouped_folds(d.y[train_idx], groups, CROSSFIT, 3)
    names = {r.plan.name.split("-")[0] for r in runs}
    assert names == {f"tune{k}" for k in range(CROSSFIT)}
    for run in runs:
        k = int(run.plan.name.split("-")[0].removeprefix("tune"))
        in_group = {d.clip_ids[i] for i in train_idx[inner == k]}
        songs = {s.source for s in run.plan.segments if s.kind == "song"}
        assert songs and songs <= in_group, (k, songs - in_group)
        # ...so the head that scored them, fitted on the other groups, never saw them or their artists.
        artists = {groups[d.clip_ids.index(c)] for c in songs}
        others = {groups[i] for i in train_idx[inner != k]}
        assert not artists & others


def test_judge_refuses_playlists_that_share_a_clip(data: tuple[TaggerData, list[str]]) -> None:
    d, _ = data
    head = fit(get_recipe("tagger"), d, np.arange(len(d.clips), dtype=np.int64), [], 0).linear()
    clips = decoded_clips(d.clips[:6], d.spec.sample_rate)
    runs: list[PlaylistRun] = playlist_runs(clips, d.spec, head_predict(_embed, head), conditions=("clean",), seed=0,
                                            purpose="eval", cache_dir=None, name="x")
    with pytest.raises(ValueError, match="both tuned on and judged on"):
        judge(runs, runs, d.labels, DecisionParams())
    other = playlist_runs(decoded_clips(d.clips[6:12], d.spec.sample_rate), d.spec, head_predict(_embed, head),
                          conditions=("clean",), seed=1, purpose="train", cache_dir=None, name="y")
    result = judge(other, runs, d.labels, DecisionParams(),
                   grid={"hysteresis_windows": (1, 2)})
    assert set(result.metrics) == {"clean"} and result.tuning["playlists"] == len(other)


def sensor_flaps(*args: Any) -> dict[str, dict[str, float]]:
    """:func:`sensor_judged`'s within-song changes a minute alone."""
    return {c: {n: m["within_song_changes_per_min"] for n, m in per.items()} for c, per in sensor_judged(*args).items()}


def test_sensor_flaps_count_changes_inside_songs_and_reset_for_talk(data: tuple[TaggerData, list[str]]) -> None:
    d, _ = data
    head = fit(get_recipe("tagger"), d, np.arange(len(d.clips), dtype=np.int64), [], 0).linear()
    runs = playlist_runs(decoded_clips(d.clips[:6], d.spec.sample_rate), d.spec, head_predict(_embed, head),
                         conditions=("clean",), seed=0, purpose="eval", cache_dir=None, name="s")
    run = runs[0]
    n = len(run.probs)
    k = TAGS.index("instrumental")
    steady = np.full((n, N_TAGS), 0.02, dtype=np.float32)
    steady[:, k] = 0.95
    params = {"vocals": TagSensorParams("instrumental", "instrumental", "vocal", "none")}
    music = ["jazz"] * n
    assert sensor_flaps([run], [steady], [music], params) == {"clean": {"vocals": 0.0}}
    # The tag flips every 20 windows inside songs: the sensor follows, and those are within-song changes.
    flipping = steady.copy()
    flipping[(np.arange(n) // 20) % 2 == 1, k] = 0.02
    assert sensor_flaps([run], [flipping], [music], params)["clean"]["vocals"] > 0
    # Talk (not_music published) resets the sensor to none at every hop: no changes to count either.
    assert sensor_flaps([run], [flipping], [["not_music"] * n], params) == {"clean": {"vocals": 0.0}}


def _runs(d: TaggerData, clips: slice, seed: int, purpose: str, name: str) -> list[PlaylistRun]:
    head = fit(get_recipe("tagger"), d, np.arange(len(d.clips), dtype=np.int64), [], 0).linear()
    return playlist_runs(decoded_clips(d.clips[clips], d.spec.sample_rate), d.spec, head_predict(_embed, head),
                         conditions=("clean",), seed=seed, purpose=purpose, cache_dir=None, name=name)


def test_a_longer_hop_is_every_mth_window_with_the_truth_read_at_those_windows(
        data: tuple[TaggerData, list[str]]) -> None:
    d, _ = data
    run = _runs(d, slice(0, 6), 0, "eval", "h")[0]
    half = subsample(run, 2)
    assert subsample(run, 1) is run
    assert np.array_equal(half.probs, run.probs[::2]) and np.array_equal(half.rms_dbfs, run.rms_dbfs[::2])
    assert half.truth.hop_s == pytest.approx(2 * run.truth.hop_s)
    assert np.array_equal(half.truth.times_s, run.truth.times_s[::2])
    assert half.truth.labels == run.truth.labels[::2]  # the same audio is audible at the same window ends
    with pytest.raises(ValueError):
        subsample(run, 0)


def test_the_tradeoff_tunes_per_hop_and_holds_the_main_constant_along_its_curve(
        data: tuple[TaggerData, list[str]]) -> None:
    d, _ = data
    tune, test = _runs(d, slice(6, 12), 1, "train", "t"), _runs(d, slice(0, 6), 0, "eval", "e")
    grid = {"switch_per_hop": (0.005, 0.05), "hysteresis_windows": (1, 2)}
    hops = hop_tradeoff(tune, test, d.labels, DecisionParams(), grid, multiples=(1, 2))
    assert [h["every"] for h in hops] == [1, 2]
    assert [h["hop_s"] for h in hops] == pytest.approx([test[0].truth.hop_s, 2 * test[0].truth.hop_s])
    assert hops[1]["windows_per_min"] == pytest.approx(hops[0]["windows_per_min"] / 2)
    # At the shipped hop the tuned rule is the one judge() ships.
    assert hops[0]["tuned"] == judge(tune, test, d.labels, DecisionParams(), grid=grid).tuned
    for h in hops:
        assert [p["switch_per_hop"] for p in h["curve"]] == [0.005, 0.05]
        assert all(p["tuned"]["switch_per_hop"] == p["switch_per_hop"] for p in h["curve"])
        assert set(h["metrics"]["clean"]) >= {"settled_accuracy", "within_song_changes_per_min"}
