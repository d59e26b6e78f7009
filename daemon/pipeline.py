"""The processing loop: source -> ring + streaming MFCC -> gates -> model -> smoother -> sinks.

:class:`Classifier` is the deterministic core (samples in, one result per hop out; no threads,
no sockets). :class:`Pipeline` drives it from a source and feeds MQTT and systemd. One
``threading.Event`` stops everything; every blocking call in the loop has a timeout.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from daemon.gates import SILENCE, UNAVAILABLE, UNKNOWN, candidate_label, dbfs_from_mean_square, is_silent
from daemon.ringbuffer import SampleRing
from daemon.settings import PipelineSettings
from daemon.smoothing import Hysteresis, LogProbSmoother
from daemon.sources import AudioSource
from edge.features import StreamingMfcc, normalize_window
from edge.scoring import top_k
from edge.spec import FeatureSpec

log = logging.getLogger(__name__)
FloatArray = npt.NDArray[np.float32]
READ_TIMEOUT_S = 0.25


class Model(Protocol):
    def predict(self, window: FloatArray) -> FloatArray: ...


@dataclass(frozen=True)
class WindowResult:
    """One classified hop. ``stream_s`` is the audio time (seconds) at the window's end."""

    candidate: str  # this window's verdict after the gates: a genre, silence or unknown
    published: str  # after hysteresis: what the genre topic carries
    changed: bool  # published changed with this window
    confidence: float  # smoothed probability (0..1) of the published genre (or of the top one)
    top3: list[tuple[str, float]]
    rms_dbfs: float
    stream_s: float
    inference_ms: float | None  # None when the silence gate skipped the model


@dataclass
class Counters:
    windows: int = 0
    silent_windows: int = 0
    inference_ms_last: float = 0.0
    inference_ms_total: float = 0.0
    inferences: int = 0
    process_ms_max: float = 0.0  # worst MFCC + inference + smoothing time of one hop
    nonfinite_chunks: int = 0  # chunks that held NaN/Inf samples (replaced by 0)

    @property
    def inference_ms_avg(self) -> float:
        return self.inference_ms_total / self.inferences if self.inferences else 0.0


class Classifier:
    """Pushes mono samples at ``spec.sample_rate``; classifies the latest window every hop."""

    def __init__(self, spec: FeatureSpec, model: Model, settings: PipelineSettings) -> None:
        self.spec = spec
        self.model = model
        self.settings = settings
        self.hop_frames = spec.frames_for(settings.hop_s)
        self.mfcc = StreamingMfcc(spec)
        self.ring = SampleRing(spec.window_span_samples)
        self.smoother = LogProbSmoother(len(spec.labels), settings.smoothing_windows)
        self.hysteresis = Hysteresis(settings.hysteresis_windows)
        self.counters = Counters()
        self._input = np.zeros(spec.input_shape, dtype=np.float32)
        self._next_due = spec.frames_per_window  # frame count at which the next window is due
        self._samples = 0

    def reset(self) -> None:
        """Forget buffered audio and history after a gap (the published label is kept)."""
        self.mfcc.reset()
        self.ring.reset()
        self.smoother.reset()
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
        if is_silent(rms, self.settings.silence_dbfs):
            c.silent_windows += 1
            self.smoother.reset()  # music after a pause starts without the old song's votes
            published, changed = self.hysteresis.update(SILENCE)
            return WindowResult(SILENCE, published, changed, 0.0, [], rms, stream_s, None)
        normalize_window(window, self.spec, out=self._input)
        t0 = time.perf_counter()
        probs = self.model.predict(self._input)
        ms = (time.perf_counter() - t0) * 1e3
        c.inferences += 1
        c.inference_ms_last = ms
        c.inference_ms_total += ms
        smoothed = self.smoother.push(probs)
        best = int(np.argmax(smoothed))
        candidate = candidate_label(self.spec.labels[best], float(smoothed[best]), self.settings.min_confidence)
        published, changed = self.hysteresis.update(candidate)
        labels = self.spec.labels
        confidence = float(smoothed[labels.index(published)]) if published in labels else float(smoothed[best])
        return WindowResult(candidate, published, changed, confidence, top_k(smoothed, labels, 3), rms, stream_s, ms)


class Sink(Protocol):
    def set_genre(self, genre: str) -> None: ...

    def set_state(self, payload: str) -> None: ...


class Notifier(Protocol):
    def watchdog(self, now: float | None = None) -> bool: ...

    def status(self, text: str) -> bool: ...


@dataclass
class Pipeline:
    """Runs until ``stop`` is set or a non-looping file ends; returns the number of windows."""

    source: AudioSource
    classifier: Classifier
    sink: Sink
    notifier: Notifier
    stop: threading.Event
    model_version: str
    extra_counters: Callable[[], dict[str, Any]] | None = None  # more counters (MQTT reconnects)
    last_result: WindowResult | None = field(default=None, init=False)

    def run(self) -> int:
        generation = self.source.generation
        last_unavailable_pub = 0.0
        hop_s = self.classifier.settings.hop_s
        while not self.stop.is_set():
            chunk = self.source.read(timeout=READ_TIMEOUT_S)
            if self.source.generation != generation:
                generation = self.source.generation
                self.classifier.reset()
            if chunk is None:
                if self.source.finished:
                    break
                if self.source.status == UNAVAILABLE:
                    # The capture thread is alive and retrying on purpose: not a stall.
                    self.notifier.watchdog()
                    now = time.monotonic()
                    if now - last_unavailable_pub >= max(hop_s, 1.0):
                        last_unavailable_pub = now
                        self.classifier.reset()
                        self.sink.set_state(self.state_json(None, status=UNAVAILABLE))
                        self.notifier.status("audio input unavailable; retrying | " + self.counter_text())
                continue
            if chunk.size == 0:
                continue
            result = self.classifier.push(chunk)
            if result is None:
                continue
            self._emit(result)
        return self.classifier.counters.windows

    def _emit(self, r: WindowResult) -> None:
        self.last_result = r
        if r.changed:
            if r.published == SILENCE:
                log.info(
                    "silence: %.1f dBFS below %.1f dBFS, not classifying",
                    r.rms_dbfs,
                    self.classifier.settings.silence_dbfs,
                )
            else:
                log.info("genre: %s (confidence %.2f, at %.1f s)", r.published, r.confidence, r.stream_s)
        elif r.candidate == SILENCE:
            log.debug("silent window (%.1f dBFS)", r.rms_dbfs)
        self.sink.set_genre(r.published)
        self.sink.set_state(self.state_json(r))
        self.notifier.watchdog()
        self.notifier.status(f"{r.published} ({r.confidence:.0%}) | {self.counter_text()}")

    def counters(self) -> dict[str, Any]:
        c = self.classifier.counters
        s = self.source.stats
        out: dict[str, Any] = {
            "windows": c.windows,
            "silent_windows": c.silent_windows,
            "overflows": s.overflows,
            "dropped_chunks": s.dropped_chunks,
            "source_reconnects": s.reconnects,
            "inference_ms": round(c.inference_ms_last, 2),
            "inference_ms_avg": round(c.inference_ms_avg, 2),
            "hop_ms_max": round(c.process_ms_max, 2),
            "nonfinite_chunks": c.nonfinite_chunks,
        }
        if self.extra_counters is not None:
            out.update(self.extra_counters())
        return out

    def counter_text(self) -> str:
        c = self.counters()
        return (
            f"windows {c['windows']} (silent {c['silent_windows']}), inference {c['inference_ms_avg']:.1f} ms avg, "
            f"overflows {c['overflows']}, source reconnects {c['source_reconnects']}, "
            f"mqtt reconnects {c.get('mqtt_reconnects', 0)}"
        )

    def state_json(self, r: WindowResult | None, status: str | None = None) -> str:
        """The retained ``state`` payload (see the README for the fields)."""
        if r is None:
            published = self.classifier.hysteresis.published or UNKNOWN
            doc: dict[str, Any] = {
                "genre": published,
                "status": status or UNKNOWN,
                "candidate": None,
                "confidence": 0.0,
                "top3": [],
                "rms_db": None,
                "stream_s": None,
            }
        else:
            doc = {
                "genre": r.published,
                "status": status or (r.published if r.published in (SILENCE, UNKNOWN) else "music"),
                "candidate": r.candidate,
                "confidence": round(r.confidence, 4),
                "top3": [{"genre": g, "p": round(p, 4)} for g, p in r.top3],
                "rms_db": round(r.rms_dbfs, 1),
                "stream_s": round(r.stream_s, 3),
            }
        doc["time"] = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        doc["model"] = self.model_version
        doc["counters"] = self.counters()
        return json.dumps(doc, separators=(",", ":"))
