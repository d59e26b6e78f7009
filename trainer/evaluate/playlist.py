"""Playlists for the stream evaluation: held-out clips played one after another in a living room.

A plan is pure data (which clip where, in samples), made from a seed: every genre several times in a
seeded order, songs joined by a direct cut, a 0.5-2 s gap of room tone or a 2-3 s equal-power
crossfade, and now and then a 20-40 s not-music segment (speech, TV-like talk over a quiet music bed,
household noise) between two songs. :func:`render` turns a plan into audio; the truth of every hop
comes from the same plan (:meth:`PlaylistPlan.truth`), so audio and truth cannot drift apart.

Not-music audio reuses :mod:`trainer.data.negatives`' generators: ``purpose="eval"`` voices and sentences
for test playlists, ``"train"`` for the tuner's playlists, so the rule is never tuned on the talkers
it is scored on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from edge.decide.states import NOT_MUSIC
from trainer.augment.noises import colored_noise, mains_hum
from trainer.data.negatives import speech_track
from trainer.evaluate.stream_metrics import Truth, TruthSegment

FloatArray = npt.NDArray[np.float32]
NOT_MUSIC_KINDS = ("speech", "tv_talk", "household")
ENTRIES = ("start", "cut", "gap", "crossfade")


@dataclass(frozen=True)
class PlaylistConfig:
    """How playlists are put together; lengths in seconds, shares are probabilities per boundary."""

    gap_share: float = 0.3
    gap_s: tuple[float, float] = (0.5, 2.0)
    crossfade_share: float = 0.3
    crossfade_s: tuple[float, float] = (2.0, 3.0)
    songs_per_not_music: int = 6  # one not-music segment after about this many songs
    not_music_s: tuple[float, float] = (20.0, 40.0)
    room_tone_dbfs: tuple[float, float] = (-72.0, -58.0)  # a gap: the room with the music stopped

    def __post_init__(self) -> None:
        if not (self.gap_share >= 0 and self.crossfade_share >= 0 and self.gap_share + self.crossfade_share <= 1):
            raise ValueError("gap_share and crossfade_share must be >= 0 and sum to at most 1")
        if self.songs_per_not_music < 1:
            raise ValueError("songs_per_not_music must be >= 1")


@dataclass(frozen=True)
class Song:
    clip_id: str
    genre: str
    samples: int


@dataclass(frozen=True)
class Segment:
    """One planned segment. ``onset``/``length`` in samples; ``entry`` is how it follows the one before."""

    kind: str  # "song" | "not_music"
    label: str  # the truth: the song's genre, or not_music
    source: str  # clip id, or the not-music kind
    onset: int
    length: int
    entry: str
    seed: int  # drives the segment's own random audio (not-music) so a plan renders identically
    bed: str | None = None  # tv_talk: the clip id of the quiet music bed under the talk

    @property
    def end(self) -> int:
        return self.onset + self.length


@dataclass(frozen=True)
class PlaylistPlan:
    name: str
    sample_rate: int
    segments: tuple[Segment, ...]
    samples: int

    @property
    def duration_s(self) -> float:
        return self.samples / self.sample_rate

    def truth_segments(self) -> tuple[TruthSegment, ...]:
        sr = self.sample_rate
        return tuple(TruthSegment(s.label, s.onset / sr, s.end / sr) for s in self.segments)

    def truth(self, times_s: Sequence[float] | npt.NDArray[np.float64], hop_s: float) -> Truth:
        """The truth at hop times ``times_s`` (seconds from the playlist start)."""
        return Truth.build(self.truth_segments(), times_s, hop_s)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "duration_s": round(self.duration_s, 3),
                "segments": [{"kind": s.kind, "label": s.label, "source": s.source, "entry": s.entry,
                              "onset_s": round(s.onset / self.sample_rate, 3),
                              "length_s": round(s.length / self.sample_rate, 3), **({"bed": s.bed} if s.bed else {})}
                             for s in self.segments]}


def select_songs(songs: Sequence[Song], max_per_genre: int | None, seed: int) -> list[Song]:
    """At most ``max_per_genre`` songs of each genre (seeded choice), so big genres do not drown the rest."""
    if max_per_genre is None:
        return list(songs)
    rng = np.random.default_rng([seed, 0x5E1])
    out: list[Song] = []
    for genre in sorted({s.genre for s in songs}):
        pool = [s for s in songs if s.genre == genre]
        pick = sorted(rng.permutation(len(pool))[:max_per_genre].tolist())
        out.extend(pool[i] for i in pick)
    return out


def _deal(songs: Sequence[Song], n_playlists: int, rng: np.random.Generator) -> list[list[Song]]:
    """Genre by genre, round-robin over playlists, so each playlist gets every genre it can."""
    out: list[list[Song]] = [[] for _ in range(n_playlists)]
    offset = 0
    for genre in sorted({s.genre for s in songs}):
        pool = [s for s in songs if s.genre == genre]
        for k, i in enumerate(rng.permutation(len(pool)).tolist()):
            out[(offset + k) % n_playlists].append(pool[i])
        offset = (offset + len(pool)) % n_playlists
    return [[p[i] for i in rng.permutation(len(p)).tolist()] for p in out]


def plan_playlists(songs: Sequence[Song], n_playlists: int, sample_rate: int, seed: int,
                   config: PlaylistConfig | None = None, *, not_music: bool = True,
                   name: str = "playlist") -> list[PlaylistPlan]:
    """Deal ``songs`` (each used once) over ``n_playlists`` seeded playlists; see the module docstring."""
    cfg = config or PlaylistConfig()
    if n_playlists < 1:
        raise ValueError(f"need at least one playlist, got {n_playlists}")
    if len(songs) < n_playlists:
        raise ValueError(f"{len(songs)} songs cannot fill {n_playlists} playlists")
    rng = np.random.default_rng([seed, 0x9A11])
    plans = []
    for p, order in enumerate(_deal(songs, n_playlists, rng)):
        items: list[tuple[str, Song | None]] = []
        nm_kinds = [NOT_MUSIC_KINDS[(p + k) % len(NOT_MUSIC_KINDS)] for k in range(len(order))]
        next_nm = int(rng.integers(max(1, cfg.songs_per_not_music // 2), cfg.songs_per_not_music + 1))
        for i, song in enumerate(order):
            items.append(("song", song))
            # Never last: a not-music segment sits between two songs, as TV talk interrupts a playlist.
            if not_music and i + 1 == next_nm and i + 1 < len(order):
                items.append((nm_kinds.pop(0), None))
                next_nm += max(1, cfg.songs_per_not_music + int(rng.integers(-1, 2)))
        plans.append(_place(items, f"{name}-{p}", sample_rate, cfg, rng, [s.clip_id for s in order]))
    return plans


def _place(items: Sequence[tuple[str, Song | None]], name: str, sr: int, cfg: PlaylistConfig,
           rng: np.random.Generator, clip_ids: Sequence[str]) -> PlaylistPlan:
    segments: list[Segment] = []
    cursor = 0  # end of the previous segment
    for kind, song in items:
        if song is not None:
            seg_kind, label, source, length, bed = "song", song.genre, song.clip_id, song.samples, None
        else:
            seg_kind, label, source = "not_music", NOT_MUSIC, kind
            length = round(float(rng.uniform(*cfg.not_music_s)) * sr)
            bed = str(rng.choice(list(clip_ids))) if kind == "tv_talk" else None
        onset, entry = cursor, "start"
        if segments:
            u = float(rng.random())
            if u < cfg.gap_share:
                entry, onset = "gap", cursor + round(float(rng.uniform(*cfg.gap_s)) * sr)
            elif u < cfg.gap_share + cfg.crossfade_share:
                # A crossfade never eats more than half of either neighbour.
                fade = min(round(float(rng.uniform(*cfg.crossfade_s)) * sr), segments[-1].length // 2, length // 2)
                entry, onset = "crossfade", cursor - fade
            else:
                entry = "cut"
        segments.append(Segment(seg_kind, label, source, onset, length, entry, int(rng.integers(2**62)), bed))
        cursor = onset + length
    return PlaylistPlan(name, sr, tuple(segments), cursor)


def _dbfs_gain(x: FloatArray, dbfs: float) -> FloatArray:
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0
    out: FloatArray = (x * np.float32(10 ** (dbfs / 20) / max(rms, 1e-12))).astype(np.float32)
    return out


def not_music_audio(kind: str, n: int, sample_rate: int, rng: np.random.Generator, purpose: str,
                    bed: FloatArray | None = None) -> FloatArray:
    """``n`` samples of not-music: speech, TV-like talk over a quiet music bed, or household noise.

    Levels are those of a talker or TV across the room (-32..-16 dBFS RMS), household noise a little
    lower (-40..-24); all above the daemon's -50 dBFS silence gate, so the rule, not the gate, decides.
    """
    if kind == "speech":
        return _dbfs_gain(speech_track(n, sample_rate, rng, purpose), float(rng.uniform(-32.0, -16.0)))
    if kind == "tv_talk":
        if bed is None or bed.size == 0:
            raise ValueError("tv_talk needs a music bed")
        talk = _dbfs_gain(speech_track(n, sample_rate, rng, purpose), float(rng.uniform(-28.0, -16.0)))
        music = np.resize(bed, n).astype(np.float32)  # np.resize repeats a short bed
        # The bed sits 14-22 dB under the talk, as under a presenter or a documentary's narration.
        bed_db = 20 * np.log10(max(float(np.sqrt(np.mean(np.square(talk, dtype=np.float64)))), 1e-12))
        mixed = talk + _dbfs_gain(music, bed_db - float(rng.uniform(14.0, 22.0)))
        return np.clip(mixed, -1.0, 1.0).astype(np.float32)
    if kind == "household":
        noise = colored_noise(n, sample_rate, rng, float(rng.uniform(0.0, 1.0)), float(rng.uniform(0.0, 1.0)))
        noise = noise + np.float32(rng.uniform(0.0, 0.5)) * rng.standard_normal(n).astype(np.float32)  # fan, rain
        if rng.random() < 0.5:
            noise = noise + np.float32(rng.uniform(0.2, 0.8)) * mains_hum(n, sample_rate, rng)  # fridge
        return _dbfs_gain(noise.astype(np.float32), float(rng.uniform(-40.0, -24.0)))
    raise ValueError(f"unknown not-music kind {kind!r}; valid kinds: {', '.join(NOT_MUSIC_KINDS)}")


def _fade(n: int, rising: bool) -> FloatArray:
    """Equal-power fade over ``n`` samples: the sum of a rising and a falling fade keeps the loudness."""
    phase = (np.arange(n, dtype=np.float64) + 0.5) / max(n, 1) * (np.pi / 2)
    out: FloatArray = (np.sin(phase) if rising else np.cos(phase)).astype(np.float32)
    return out


def render(plan: PlaylistPlan, audio_for: Callable[[Segment], FloatArray], seed: int,
           config: PlaylistConfig | None = None) -> FloatArray:
    """The playlist's audio: each segment's ``audio_for(segment)`` (``segment.length`` samples) placed at
    its onset, crossfades faded in and out, gaps filled with quiet room tone."""
    cfg = config or PlaylistConfig()
    rng = np.random.default_rng([seed, 0x70E])
    out = np.zeros(plan.samples, dtype=np.float32)
    segs = plan.segments
    for i, seg in enumerate(segs):
        x = np.asarray(audio_for(seg), dtype=np.float32)
        if x.size != seg.length:
            raise ValueError(f"{plan.name}: segment {i} ({seg.source}) has {x.size} samples, planned {seg.length}")
        x = x.copy()
        if seg.entry == "crossfade" and i > 0:
            n_in = segs[i - 1].end - seg.onset
            x[:n_in] *= _fade(n_in, rising=True)
        if i + 1 < len(segs) and segs[i + 1].entry == "crossfade":
            n_out = seg.end - segs[i + 1].onset
            x[seg.length - n_out :] *= _fade(n_out, rising=False)
        out[seg.onset : seg.end] += x
        if seg.entry == "gap" and i > 0:
            start, stop = segs[i - 1].end, seg.onset
            tone = colored_noise(stop - start, plan.sample_rate, rng, 1.0, float(rng.uniform(0.5, 2.0)))
            out[start:stop] = _dbfs_gain(tone, float(rng.uniform(*cfg.room_tone_dbfs)))
    result: FloatArray = np.clip(out, -1.0, 1.0).astype(np.float32)
    return result


def clip_audio_for(plan: PlaylistPlan, clips: Mapping[str, FloatArray],
                   purpose: str) -> Callable[[Segment], FloatArray]:
    """``audio_for`` for :func:`render`: songs from ``clips`` (decoded at the plan's rate), not-music made
    from the segment's seed with ``purpose`` ("eval" for test playlists, "train" for tuning ones)."""

    def audio_for(seg: Segment) -> FloatArray:
        if seg.kind == "song":
            return clips[seg.source][: seg.length]
        rng = np.random.default_rng(seg.seed)
        return not_music_audio(seg.source, seg.length, plan.sample_rate, rng, purpose,
                               clips[seg.bed] if seg.bed else None)

    return audio_for


def songs_from(clips: Mapping[str, tuple[str, FloatArray]]) -> list[Song]:
    """Songs (clip id, genre, length) from decoded clips ``{clip_id: (genre, audio)}``, in id order."""
    return [Song(cid, genre, int(audio.size)) for cid, (genre, audio) in sorted(clips.items())]
