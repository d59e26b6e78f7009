"""The playlist builder: durations, truth alignment, gap and crossfade placement, seeded determinism."""

from __future__ import annotations

import itertools
import shutil

import numpy as np
import numpy.typing as npt
import pytest

from edge.decide.states import NOT_MUSIC
from trainer.evaluate.playlist import (
    PlaylistConfig,
    Segment,
    Song,
    clip_audio_for,
    not_music_audio,
    plan_playlists,
    render,
    select_songs,
)
from trainer.evaluate.stream_metrics import BOUNDARY

SR = 1000  # a low rate keeps the rendered arrays small; nothing here depends on audio content
GENRES = ("blues", "jazz", "metal", "pop", "rock")


def _songs(per_genre: int = 4, seconds: float = 30.0) -> list[Song]:
    return [Song(f"{g}.{i:05d}", g, int(seconds * SR) + 7 * i) for g in GENRES for i in range(per_genre)]


def test_same_seed_same_plans_other_seed_other_order() -> None:
    a = plan_playlists(_songs(), 2, SR, seed=3)
    assert a == plan_playlists(_songs(), 2, SR, seed=3)
    assert [s.source for s in a[0].segments] != [s.source for s in plan_playlists(_songs(), 2, SR, seed=4)[0].segments]


def test_every_song_once_every_genre_in_every_playlist_and_durations_add_up() -> None:
    songs = _songs()
    plans = plan_playlists(songs, 2, SR, seed=0)
    used = [s.source for p in plans for s in p.segments if s.kind == "song"]
    assert sorted(used) == sorted(s.clip_id for s in songs)
    for plan in plans:
        assert {s.label for s in plan.segments if s.kind == "song"} == set(GENRES)
        segs = plan.segments
        assert segs[0].onset == 0 and segs[0].entry == "start"
        assert plan.samples == segs[-1].end
        # Total = segment lengths + gaps - crossfade overlaps: the plan accounts for every sample.
        joins = sum(b.onset - a.end for a, b in itertools.pairwise(segs))
        assert plan.samples == sum(s.length for s in segs) + joins


def test_gaps_crossfades_and_not_music_follow_the_config() -> None:
    cfg = PlaylistConfig()
    plans = plan_playlists(_songs(per_genre=6), 2, SR, seed=1, config=cfg)
    entries = [s.entry for p in plans for s in p.segments[1:]]
    assert {"gap", "crossfade", "cut"} <= set(entries)
    for plan in plans:
        segs = plan.segments
        for prev, seg in itertools.pairwise(segs):
            join = seg.onset - prev.end
            if seg.entry == "gap":
                assert cfg.gap_s[0] * SR <= join <= cfg.gap_s[1] * SR
            elif seg.entry == "crossfade":
                assert cfg.crossfade_s[0] * SR <= -join <= cfg.crossfade_s[1] * SR
            else:
                assert join == 0
        nm = [i for i, s in enumerate(segs) if s.kind == "not_music"]
        assert nm, "a 15-song playlist gets at least one not-music segment"
        for i in nm:
            assert 0 < i < len(segs) - 1  # between two songs
            assert segs[i].label == NOT_MUSIC and cfg.not_music_s[0] * SR <= segs[i].length <= cfg.not_music_s[1] * SR
            assert segs[i - 1].kind == "song" and segs[i + 1].kind == "song"
    assert not any(s.kind == "not_music" for p in plan_playlists(_songs(), 2, SR, 1, not_music=False)
                   for s in p.segments)


def test_render_places_songs_fades_crossfades_and_fills_gaps_with_quiet_room_tone() -> None:
    songs = _songs(per_genre=2)
    plan = plan_playlists(songs, 1, SR, seed=2, not_music=False)[0]
    level = {s.clip_id: 0.05 * (1 + i) for i, s in enumerate(songs)}

    def audio_for(seg: Segment) -> npt.NDArray[np.float32]:
        return np.full(seg.length, level[seg.source], dtype=np.float32)  # each song a distinct constant

    x = render(plan, audio_for, seed=0)
    assert x.size == plan.samples
    segs = plan.segments
    for i, seg in enumerate(segs):
        start = segs[i - 1].end if i and seg.entry == "crossfade" else seg.onset
        stop = segs[i + 1].onset if i + 1 < len(segs) and segs[i + 1].entry == "crossfade" else seg.end
        assert np.allclose(x[start:stop], level[seg.source], atol=1e-6), f"segment {i} not placed intact"
        if seg.entry == "gap":
            gap = x[segs[i - 1].end : seg.onset]
            assert 20 * np.log10(np.sqrt(np.mean(gap.astype(np.float64) ** 2))) < -55  # near-silence
        if seg.entry == "crossfade":
            a, b = level[segs[i - 1].source], level[seg.source]
            mid = (seg.onset + segs[i - 1].end) // 2  # equal power: cos and sin both ~0.707 mid-fade
            assert x[mid] == pytest.approx((a + b) * np.sqrt(0.5), rel=0.02)
    # Truth at each hop follows the plan: gaps and crossfades are boundaries, songs their genre.
    times = np.arange(0.5, plan.duration_s, 1.0)
    truth = plan.truth(times, 1.0)
    for t, label in zip(times, truth.labels, strict=True):
        n = int(t * SR)
        playing = [s for s in segs if s.onset <= n < s.end]
        assert label == (playing[0].label if len(playing) == 1 else BOUNDARY)


def test_render_rejects_audio_of_the_wrong_length() -> None:
    plan = plan_playlists(_songs(per_genre=1), 1, SR, seed=0, not_music=False)[0]
    with pytest.raises(ValueError, match="planned"):
        render(plan, lambda seg: np.zeros(seg.length - 1, dtype=np.float32), seed=0)


def test_select_songs_caps_each_genre_reproducibly() -> None:
    songs = [*_songs(per_genre=2), *[Song(f"pop.{i:05d}x", "pop", 30 * SR) for i in range(10)]]
    picked = select_songs(songs, 3, seed=5)
    counts = {g: sum(s.genre == g for s in picked) for g in GENRES}
    assert counts == {"blues": 2, "jazz": 2, "metal": 2, "pop": 3, "rock": 2}
    assert picked == select_songs(songs, 3, seed=5) and select_songs(songs, None, 0) == songs


def test_household_noise_is_seeded_and_above_the_silence_gate() -> None:
    a = not_music_audio("household", 5 * SR, SR, np.random.default_rng(1), "eval")
    b = not_music_audio("household", 5 * SR, SR, np.random.default_rng(1), "eval")
    assert np.array_equal(a, b) and a.size == 5 * SR
    level = 20 * np.log10(np.sqrt(np.mean(a.astype(np.float64) ** 2)))
    assert -40.5 < level < -23.5
    with pytest.raises(ValueError, match="valid kinds"):
        not_music_audio("radio", 10, SR, np.random.default_rng(0), "eval")


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_tv_talk_is_speech_over_a_quiet_bed_from_the_playlist() -> None:
    sr = 22050
    plan = plan_playlists([Song(f"jazz.{i}", "jazz", 10 * sr) for i in range(3)], 1, sr, seed=0,
                          config=PlaylistConfig(songs_per_not_music=1, not_music_s=(4.0, 4.0)))[0]
    bed = np.sin(2 * np.pi * 440 * np.arange(10 * sr) / sr).astype(np.float32) * 0.3
    clips = {f"jazz.{i}": bed for i in range(3)}
    nm = [s for s in plan.segments if s.kind == "not_music"]
    kinds = {s.source for s in nm}
    assert kinds <= {"speech", "tv_talk", "household"}
    for seg in nm:
        x = clip_audio_for(plan, clips, "eval")(seg)
        assert x.size == seg.length and np.all(np.abs(x) <= 1.0)
        if seg.source == "tv_talk":
            spectrum = np.abs(np.fft.rfft(x.astype(np.float64)))
            freqs = np.fft.rfftfreq(x.size, 1 / sr)
            assert seg.bed in clips and spectrum[np.argmin(np.abs(freqs - 440))] > 0  # the bed is there
