"""Sensors from the tagger (vocals, danceable): one score per hop in, a steady state out.

A sensor reads one named score of the window: one of MSD_musicnn's 50 tags, or (bundles since the sensor heads)
a small logistic head on the tagger's embedding, fitted for that sensor on the trainer's rooms and noise and
exported as another output of the same graph: the raw ``dance`` tag did not survive a living room's noise and
band limits (AUC 0.51 in the typical room), a head trained through them does.

The same pattern as the genre's rule, smaller: a tag's per-window score (a sigmoid) is turned into log-odds and
averaged over the hops of the current music (an exponential average over about ``hops`` hops, so a song
change is followed); the state flips only when the average leaves a band around the threshold (hysteresis),
and only after ``min_windows`` windows of music. Silence and not-music reset the evidence and publish the
sensor's ``idle`` state: "is someone singing?" has no answer while nobody plays music.

A song's answer does not change halfway through it, but a head's score on a song it is unsure of (rock is neither
dance music nor not) wanders across any band. So a state held for ``latch`` windows is kept for the rest of the
song: until the published genre changes (``uncertain`` between two hops of one genre is no change), or silence or
not-music. The average goes on meanwhile, so after a release the state follows the current music at once.
``latch`` 0 never latches (bundles from before it). Pure, no I/O.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from edge.decide.states import NOT_MUSIC, SILENCE, UNCERTAIN

_EPS = 1e-4  # sigmoid scores reach 0/1 in float32; the log-odds stay finite


@dataclass(frozen=True)
class TagSensorParams:
    """One sensor: ``on`` while the tag's averaged log-odds are above ``threshold`` (+ ``band`` to turn on, -
    ``band`` to turn off), else ``off``; ``idle`` without music. Thresholds are log-odds of the tag's score."""

    tag: str
    on: str
    off: str
    idle: str
    threshold: float = 0.0
    band: float = 0.5
    hops: float = 8.0  # time constant of the exponential average, in hops
    min_windows: int = 3
    latch: int = 0  # windows a state must hold to be kept until the genre changes; 0 = never

    def __post_init__(self) -> None:
        problem = self.problem()
        if problem:
            raise ValueError(problem)

    def problem(self) -> str | None:
        if not (math.isfinite(self.threshold) and -12 <= self.threshold <= 12):
            return f"threshold must be log-odds in -12..12, got {self.threshold}"
        if not 0 <= self.band <= 5:
            return f"band must be in 0..5, got {self.band}"
        if not 1 <= self.hops <= 100:
            return f"hops must be in 1..100, got {self.hops}"
        if not 1 <= self.min_windows <= 100:
            return f"min_windows must be in 1..100, got {self.min_windows}"
        if not 0 <= self.latch <= 1000:
            return f"latch must be in 0..1000 windows (0 = never), got {self.latch}"
        if len({self.on, self.off, self.idle}) != 3:
            return "on, off and idle must be three different states"
        return None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> TagSensorParams:
        names = {f.name for f in dataclasses.fields(cls)}
        extra = sorted(set(doc) - names)
        if extra:
            raise ValueError(f"unknown tag sensor key(s): {', '.join(extra)}")
        return cls(**doc)


@dataclass(frozen=True)
class Tags:
    """A tagger bundle's model.json ``model.tags``: which model output holds the tag scores and their names, which
    output holds the sensor heads' scores (``heads_output``, None without) and theirs, and the sensors."""

    output: int
    names: tuple[str, ...]
    sensors: dict[str, TagSensorParams]
    heads_output: int | None = None
    head_names: tuple[str, ...] = ()

    @property
    def readable(self) -> tuple[str, ...]:
        """What a sensor may read, in the order :meth:`scores` returns it: the tags, then the heads."""
        return self.names + self.head_names

    def scores(self, output: Callable[[int], npt.NDArray[np.float32]]) -> npt.NDArray[np.float32]:
        """This window's readable scores from the model's ``output(k)``."""
        tags = output(self.output)
        return tags if self.heads_output is None else np.concatenate([tags, output(self.heads_output)])


def log_odds(score: float | npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.float64]:
    """The log-odds of sigmoid scores (a scalar or an array), kept finite at 0 and 1."""
    p = np.clip(np.asarray(score, dtype=np.float64), _EPS, 1.0 - _EPS)
    out: npt.NDArray[np.float64] = np.log(p / (1.0 - p))
    return out


class TagSensor:
    """One sensor's state over hops."""

    def __init__(self, params: TagSensorParams, tags: Sequence[str]) -> None:
        if params.tag not in tags:
            raise ValueError(f"{params.tag!r} is not among the model's tags and sensor heads")
        self.params = params
        self.index = list(tags).index(params.tag)
        self._alpha = 1.0 / params.hops
        self.state = params.idle
        self.mean: float | None = None  # averaged log-odds of the current music
        self.windows = 0
        self.held = 0  # windows the current state has been published (0 again at a release)
        self.genre: str | None = None  # the genre published last since the music started

    def reset(self) -> str:
        """Silence or not-music: forget the evidence, publish ``idle``."""
        self.mean, self.windows, self.state = None, 0, self.params.idle
        self.held, self.genre = 0, None
        return self.state

    @property
    def latched(self) -> bool:
        """The state is kept until a release: it has been held for ``latch`` windows (never with ``latch`` 0)."""
        return 0 < self.params.latch <= self.held

    def step(self, state: str, scores: npt.NDArray[np.floating[Any]]) -> str:
        """One classified window as the daemon runs the sensors: fed while music is published (a genre or
        ``uncertain``), reset by not-music and silence; a change of the published genre releases a latch."""
        if state in (NOT_MUSIC, SILENCE):
            return self.reset()
        if state != UNCERTAIN:
            if self.genre is not None and state != self.genre:
                self.held = 0
            self.genre = state
        return self.update(scores)

    def update(self, scores: npt.NDArray[np.floating[Any]]) -> str:
        """One music window's tag scores (the model's tag order); the sensor's state after it."""
        x = float(log_odds(scores[self.index]))
        self.windows += 1
        # Until the average has seen ~hops windows it is their plain mean: the first windows count fully.
        alpha = max(self._alpha, 1.0 / self.windows)
        self.mean = x if self.mean is None else self.mean + alpha * (x - self.mean)
        p = self.params
        if self.windows < p.min_windows or self.latched:
            return self.state
        before = self.state
        if self.state != p.on and self.mean >= p.threshold + p.band:
            self.state = p.on
        elif self.state != p.off and self.mean <= p.threshold - p.band:
            self.state = p.off
        elif self.state == p.idle:
            self.state = p.on if self.mean >= p.threshold else p.off  # inside the band at the start: the nearer side
        self.held = self.held + 1 if self.state == before else 1
        return self.state


def sensor_params(doc: Mapping[str, Any]) -> dict[str, TagSensorParams]:
    """``{name: params}`` from a bundle's ``model.tags.sensors``."""
    return {name: TagSensorParams.from_dict(d) for name, d in doc.items()}
