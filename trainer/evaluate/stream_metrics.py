"""What the house hears, scored: metrics of a published ``genre`` stream against the playlist's truth.

Pure functions over per-hop truth and per-hop published states; no I/O, no model. Definitions (hop
times are the daemon's publish times, the end of each 3 s window):

* **truth at a hop** is what is audible at that instant: the song's genre, ``not_music`` for a
  speech/TV/noise segment, or ``boundary`` inside a gap (no segment audible) or a crossfade (two
  audible). Boundary hops are excluded from every accuracy and share; they still count for
  ``changes_per_min``.
* a segment's **boundary** is its onset, the moment its audio starts (after a gap; at the start of a
  crossfade). "Settled" hops lie at least ``SETTLE_S`` after the onset of the segment playing.
* ``time_accuracy``: share of non-boundary hops whose published state equals the truth.
* ``settled_accuracy``: the same over settled hops only.
* ``changes_per_min``: published changes per minute of stream (every hop, boundaries included).
* ``within_song_changes_per_min``: changes published at settled hops of *songs*, per minute of settled
  song time: how often a steady song flaps.
* ``switch_latency_s``: for every song whose genre differs from the segment before it (the first song
  included), onset to the first hop inside the song that publishes its genre; a song never recognised
  counts as its whole length. ``median`` and ``p90`` (linear interpolation).
* ``unknown_share_music``: share of song hops published as no genre (uncertain, not_music, silence).
* ``genre_share_not_music``: share of not-music hops published as a genre.

Fractions are 0..1, times in seconds; an empty denominator gives NaN. Several playlists are scored by
pooling their counts (:func:`combine`), never by averaging ratios of unequal lengths.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from edge.decide.states import NOT_MUSIC, PUBLISHED_NON_GENRES

BOUNDARY = "boundary"
SETTLE_S = 10.0
METRIC_KEYS = ("time_accuracy", "settled_accuracy", "changes_per_min", "within_song_changes_per_min",
               "switch_latency_s.median", "switch_latency_s.p90", "unknown_share_music", "genre_share_not_music")
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class TruthSegment:
    """One audible segment: ``label`` is a genre or ``not_music``; times in seconds from the stream start."""

    label: str
    onset_s: float
    offset_s: float

    @property
    def is_music(self) -> bool:
        return self.label != NOT_MUSIC

    @property
    def length_s(self) -> float:
        return self.offset_s - self.onset_s


@dataclass(frozen=True)
class Truth:
    """Truth of one stream at its hop times: per hop the label, the segment playing (-1 at a boundary)
    and the time since that segment's onset."""

    segments: tuple[TruthSegment, ...]
    times_s: FloatArray
    labels: tuple[str, ...]
    segment_of_hop: npt.NDArray[np.int64]
    since_onset_s: FloatArray
    hop_s: float

    @classmethod
    def build(cls, segments: Sequence[TruthSegment], times_s: Sequence[float] | FloatArray, hop_s: float) -> Truth:
        """Truth at ``times_s`` (ascending) of ``segments`` (ascending onsets; neighbours may overlap or gap)."""
        times = np.asarray(times_s, dtype=np.float64)
        segs = tuple(segments)
        if hop_s <= 0:
            raise ValueError(f"hop_s must be positive, got {hop_s}")
        if any(b.onset_s < a.onset_s for a, b in itertools.pairwise(segs)):
            raise ValueError("segments must be in order of onset")
        onsets = np.array([s.onset_s for s in segs], dtype=np.float64)
        offsets = np.array([s.offset_s for s in segs], dtype=np.float64)
        # audible[i, j]: segment j plays at hop i (half-open [onset, offset)).
        audible = (times[:, None] >= onsets[None, :]) & (times[:, None] < offsets[None, :])
        count = audible.sum(axis=1)
        which = np.where(count == 1, audible.argmax(axis=1), -1).astype(np.int64)
        labels = tuple(segs[j].label if j >= 0 else BOUNDARY for j in which.tolist())
        since = np.where(which >= 0, times - onsets[np.maximum(which, 0)], np.nan) if segs else np.full(times.size,
                                                                                                        np.nan)
        return cls(segs, times, labels, which, since.astype(np.float64), float(hop_s))


@dataclass
class StreamCounts:
    """Numerators and denominators of the metrics, summable over streams."""

    hops: int = 0
    scored: int = 0
    correct: int = 0
    settled: int = 0
    settled_correct: int = 0
    changes: int = 0
    settled_song_hops: int = 0
    settled_song_changes: int = 0
    music_hops: int = 0
    music_non_genre: int = 0
    not_music_hops: int = 0
    not_music_genre: int = 0
    latencies_s: list[float] = field(default_factory=list)
    hop_s: float = 1.0

    def __add__(self, other: StreamCounts) -> StreamCounts:
        if self.hops and other.hops and not math.isclose(self.hop_s, other.hop_s):
            raise ValueError(f"cannot pool streams with hops {self.hop_s} s and {other.hop_s} s")
        ints = {k: getattr(self, k) + getattr(other, k) for k in _INT_FIELDS}
        return StreamCounts(**ints, latencies_s=[*self.latencies_s, *other.latencies_s],
                            hop_s=self.hop_s if self.hops else other.hop_s)


_INT_FIELDS = ("hops", "scored", "correct", "settled", "settled_correct", "changes", "settled_song_hops",
               "settled_song_changes", "music_hops", "music_non_genre", "not_music_hops", "not_music_genre")


def is_genre_state(state: str) -> bool:
    """True when a published state announces a genre (not uncertain / not_music / silence)."""
    return state not in PUBLISHED_NON_GENRES


def count(truth: Truth, published: Sequence[str], settle_s: float = SETTLE_S) -> StreamCounts:
    """The counts of one stream: ``published[i]`` is the state the ``genre`` topic carries after hop i."""
    n = len(published)
    if n != truth.times_s.size:
        raise ValueError(f"{n} published states for {truth.times_s.size} hops")
    pub = np.array(published, dtype=object)
    lab = np.array(truth.labels, dtype=object)
    scored = lab != BOUNDARY
    right = scored & (pub == lab)
    settled = scored & (np.nan_to_num(truth.since_onset_s, nan=-1.0) >= settle_s)
    changed = np.zeros(n, dtype=bool)
    changed[1:] = pub[1:] != pub[:-1]
    music = scored & (lab != NOT_MUSIC)
    not_music = lab == NOT_MUSIC
    genre_pub = np.array([is_genre_state(str(s)) for s in published], dtype=bool)
    return StreamCounts(
        hops=n, scored=int(scored.sum()), correct=int(right.sum()), settled=int(settled.sum()),
        settled_correct=int((settled & right).sum()), changes=int(changed.sum()),
        settled_song_hops=int((settled & music).sum()), settled_song_changes=int((settled & music & changed).sum()),
        music_hops=int(music.sum()), music_non_genre=int((music & ~genre_pub).sum()),
        not_music_hops=int(not_music.sum()), not_music_genre=int((not_music & genre_pub).sum()),
        latencies_s=switch_latencies(truth, published), hop_s=truth.hop_s)


def switch_latencies(truth: Truth, published: Sequence[str]) -> list[float]:
    """Onset to first recognition, per song that changes the genre (unrecognised: the song's length)."""
    out: list[float] = []
    times = truth.times_s
    previous: str | None = None
    for seg in truth.segments:
        if seg.is_music and seg.label != previous:
            inside = np.flatnonzero((times >= seg.onset_s) & (times < seg.offset_s))
            hit = next((int(i) for i in inside if published[i] == seg.label), None)
            out.append(float(times[hit] - seg.onset_s) if hit is not None else seg.length_s)
        previous = seg.label
    return out


def combine(parts: Iterable[StreamCounts]) -> StreamCounts:
    total = StreamCounts()
    for part in parts:
        total = total + part
    return total


def _ratio(num: int, den: float) -> float:
    return num / den if den > 0 else math.nan


def metrics(counts: StreamCounts) -> dict[str, float]:
    """The report's metrics (keys as in :data:`METRIC_KEYS`) from pooled counts."""
    per_min = 60.0 / counts.hop_s
    lat = np.asarray(counts.latencies_s, dtype=np.float64)
    return {
        "time_accuracy": _ratio(counts.correct, counts.scored),
        "settled_accuracy": _ratio(counts.settled_correct, counts.settled),
        "changes_per_min": _ratio(counts.changes, counts.hops / per_min),
        "within_song_changes_per_min": _ratio(counts.settled_song_changes, counts.settled_song_hops / per_min),
        "switch_latency_s.median": float(np.median(lat)) if lat.size else math.nan,
        "switch_latency_s.p90": float(np.percentile(lat, 90)) if lat.size else math.nan,
        "unknown_share_music": _ratio(counts.music_non_genre, counts.music_hops),
        "genre_share_not_music": _ratio(counts.not_music_genre, counts.not_music_hops),
        "not_music_share": _ratio(counts.not_music_hops, counts.scored),  # how much of the stream is talk or noise
    }


def stream_metrics(truth: Truth, published: Sequence[str], settle_s: float = SETTLE_S) -> dict[str, float]:
    """:func:`metrics` of one stream."""
    return metrics(count(truth, published, settle_s))


def nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """``{"switch_latency_s.median": x}`` -> ``{"switch_latency_s": {"median": x}}`` as report.json keys it."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        head, _, tail = key.partition(".")
        if tail:
            sub = out.setdefault(head, {})
            assert isinstance(sub, dict)
            sub[tail] = value
        else:
            out[key] = value
    return out
