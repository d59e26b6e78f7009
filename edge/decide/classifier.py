"""Streaming classification: samples in, one decision per hop out (no threads, no sockets).

The daemon pushes capture chunks; ``genre-predict --published`` and the tests push a decoded file.
Only the MFCC frames new since the last hop are computed (``StreamingMfcc``); the window is
normalised as in training, run through the model, and handed to the :class:`Decider`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from edge.decide.decider import Decider
from edge.decide.gates import dbfs_from_mean_square, is_silent
from edge.decide.params import DecisionParams
from edge.decide.ringbuffer import SampleRing
from edge.decide.tags import Tags, TagSensor
from edge.features import StreamingMfcc, normalize_window
from edge.spec import FeatureSpec

FloatArray = npt.NDArray[np.float32]


class Model(Protocol):
    def predict(self, window: FloatArray) -> FloatArray: ...


class TaggedModel(Model, Protocol):
    def output(self, k: int) -> FloatArray: ...


@dataclass(frozen=True)
class WindowResult:
    """One classified hop. ``stream_s`` is the audio time (seconds) at the window's end."""

    candidate: str  # this hop's state before hysteresis: a genre, uncertain, not_music or silence
    published: str  # after hysteresis: what the genre topic carries
    changed: bool  # published changed with this window
    confidence: float  # the rule's probability of ``published`` (edge.decide.decider.Decider)
    top3: list[tuple[str, float]]
    rms_dbfs: float
    stream_s: float
    inference_ms: float | None  # None when the silence gate skipped the model
    sensors: dict[str, str] = field(default_factory=dict)  # tag sensors' states (a tagger bundle only)
    top_tags: list[tuple[str, float]] = field(default_factory=list)  # this window's five highest tag scores


@dataclass
class Counters:
    windows: int = 0
    silent_windows: int = 0
    inference_ms_last: float = 0.0
    inference_ms_total: float = 0.0
    inferences: int = 0
    process_ms_max: float = 0.0  # worst MFCC + inference + decision time of one hop
    nonfinite_chunks: int = 0  # chunks that held NaN/Inf samples (replaced by 0)

    @property
    def inference_ms_avg(self) -> float:
        return self.inference_ms_total / self.inferences if self.inferences else 0.0


class Classifier:
    """Pushes mono samples at ``spec.sample_rate``; decides on the latest window every ``hop_s``."""

    def __init__(self, spec: FeatureSpec, model: Model, params: DecisionParams, hop_s: float = 1.0,
                 tags: Tags | None = None) -> None:
        self.spec = spec
        self.model = model
        self.params = params
        self.hop_s = hop_s
        self.hop_frames = spec.frames_for(hop_s)
        self.mfcc = StreamingMfcc(spec)
        self.ring = SampleRing(spec.window_span_samples)
        self.decider = Decider(spec.labels, params)
        self.counters = Counters()
        self.tags = tags
        self.sensors = {name: TagSensor(p, tags.readable) for name, p in tags.sensors.items()} if tags else {}
        self._input = np.zeros(spec.input_shape, dtype=np.float32)
        self._next_due = spec.frames_per_window  # frame count at which the next window is due
        self._samples = 0

    def reset(self) -> None:
        """Forget buffered audio and evidence after a gap (the published state is kept)."""
        self.mfcc.reset()
        self.ring.reset()
        self.decider.reset()
        for sensor in self.sensors.values():
            sensor.reset()
        self._next_due = self.spec.frames_per_window

    def push(self, chunk: FloatArray) -> WindowResult | None:
        """Add samples; return a result when a hop's worth of new frames completed a window."""
        t0 = time.perf_counter()
        if not np.isfinite(np.dot(chunk, chunk)):
            # NaN/Inf from a driver or file would poison the MFCC ring and the RMS for a whole window
            # (reported as 3 s of "silence"); a dropout of zeros is what the samples really carry.
            # (A sum of squares overflowing float32 also lands here; nan_to_num keeps those samples.)
            chunk = np.nan_to_num(chunk, nan=0.0, posinf=0.0, neginf=0.0)
            self.counters.nonfinite_chunks += 1
        self._samples += chunk.shape[0]
        self.ring.push(chunk)
        self.mfcc.push(chunk)
        frames = self.mfcc.frames_total
        if frames < self._next_due:
            return None
        # Windows stay on the hop grid whatever the chunk size; a chunk spanning several hops
        # yields one window (the latest audio), not a burst of stale ones.
        while self._next_due <= frames:
            self._next_due += self.hop_frames
        result = self._classify()
        self.counters.process_ms_max = max(self.counters.process_ms_max, (time.perf_counter() - t0) * 1e3)
        return result

    def _classify(self) -> WindowResult:
        window = self.mfcc.latest_window()
        assert window is not None  # frames_total >= frames_per_window was checked
        c = self.counters
        c.windows += 1
        rms = dbfs_from_mean_square(self.ring.mean_square())
        stream_s = self._samples / self.spec.sample_rate
        if is_silent(rms, self.params.silence_dbfs):
            c.silent_windows += 1
            d = self.decider.silent()
            sensors = {name: s.reset() for name, s in self.sensors.items()}
            return WindowResult(d.candidate, d.state, d.changed, d.confidence, d.top3, rms, stream_s, None, sensors)
        normalize_window(window, self.spec, out=self._input)
        t0 = time.perf_counter()
        probs = self.model.predict(self._input)
        ms = (time.perf_counter() - t0) * 1e3
        c.inferences += 1
        c.inference_ms_last = ms
        c.inference_ms_total += ms
        d = self.decider.update(probs)
        sensors, top_tags = self._tag_sensors(d.state)
        return WindowResult(d.candidate, d.state, d.changed, d.confidence, d.top3, rms, stream_s, ms, sensors, top_tags)

    def _tag_sensors(self, state: str) -> tuple[dict[str, str], list[tuple[str, float]]]:
        """The tag sensors after this window: fed while music is published, reset by not-music (and silence)."""
        if self.tags is None:
            return {}, []
        model: TaggedModel = self.model  # type: ignore[assignment]  # Tags come only with a tagger bundle
        scores = self.tags.scores(model.output)
        sensors = {name: s.step(state, scores) for name, s in self.sensors.items()}
        order = np.argsort(scores[: len(self.tags.names)])[::-1][:5]  # the top five of the 50 tags
        return sensors, [(self.tags.names[i], float(scores[i])) for i in order]
