"""The processing loop: source -> classifier (edge.decide) -> MQTT and systemd.

:class:`edge.decide.classifier.Classifier` is the deterministic core (samples in, one decision per
hop out; no threads, no sockets). :class:`Pipeline` drives it from a source and feeds the sinks. One
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

from daemon.sources import AudioSource
from edge.decide.classifier import Classifier, WindowResult
from edge.decide.states import MUSIC, PUBLISHED_NON_GENRES, SILENCE, UNAVAILABLE, UNCERTAIN

log = logging.getLogger(__name__)
READ_TIMEOUT_S = 0.25


class Sink(Protocol):
    def set_genre(self, genre: str) -> None: ...

    def set_sensor(self, name: str, state: str) -> None: ...

    def set_state(self, payload: str) -> None: ...

    def set_diagnostics(self, payload: str) -> None: ...

    def set_ready(self) -> None: ...


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
    # Audio seconds between `diagnostics` messages. Each one is a recorder row per diagnostic entity in
    # Home Assistant, so they follow the clock, not the hop; the genre itself goes out at every change.
    diagnostics_interval_s: float = 60.0
    last_result: WindowResult | None = field(default=None, init=False)
    _next_diagnostics_s: float = field(default=0.0, init=False)
    _ready: bool = field(default=False, init=False)

    def run(self) -> int:
        generation = self.source.generation
        last_unavailable_pub = 0.0
        hop_s = self.classifier.hop_s
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
                    self.classifier.params.silence_dbfs,
                )
            else:
                log.info("genre: %s (confidence %.2f, at %.1f s)", r.published, r.confidence, r.stream_s)
        elif r.candidate == SILENCE:
            log.debug("silent window (%.1f dBFS)", r.rms_dbfs)
        self.sink.set_genre(r.published)
        for name, state in r.sensors.items():
            self.sink.set_sensor(name, state)
        self.sink.set_state(self.state_json(r))
        if not self._ready and self._settled(r):
            self._ready = True
            self.sink.set_ready()
        if r.stream_s >= self._next_diagnostics_s:
            self._next_diagnostics_s = r.stream_s + self.diagnostics_interval_s
            self.sink.set_diagnostics(self.diagnostics_json(r))
        self.notifier.watchdog()
        self.notifier.status(f"{r.published} ({r.confidence:.0%}) | {self.counter_text()}")

    def _settled(self, r: WindowResult) -> bool:
        """Whether this run's output is a current state yet (then ``online`` may go out).

        The first windows of a run say ``uncertain`` because the rule has no evidence yet, not because
        the music is unclear; going online then would show Home Assistant unavailable -> uncertain ->
        genre, a genre change that fires automations on every restart. A real uncertain is published
        once the rule has had its windows.
        """
        p = self.classifier.params
        warm_up = p.smoothing_windows + p.hysteresis_windows
        return r.published != UNCERTAIN or self.classifier.counters.windows >= warm_up

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
            published = self.classifier.decider.published or UNCERTAIN
            doc: dict[str, Any] = {
                "genre": published,
                "status": status or _status(published),
                "candidate": None,
                "confidence": 0.0,
                "top3": [],
                "rms_db": None,
                "stream_s": None,
            }
        else:
            doc = {
                "genre": r.published,
                "status": status or _status(r.published),
                "candidate": r.candidate,
                "confidence": round(r.confidence, 4),
                "top3": [{"genre": g, "p": round(p, 4)} for g, p in r.top3],
                "rms_db": round(r.rms_dbfs, 1),
                "stream_s": round(r.stream_s, 3),
            }
            if r.sensors:
                doc["sensors"] = r.sensors
        doc["time"] = _now()
        doc["model"] = self.model_version
        doc["counters"] = self.counters()
        return json.dumps(doc, separators=(",", ":"))

    def diagnostics_json(self, r: WindowResult) -> str:
        """The retained ``diagnostics`` payload: what Home Assistant's diagnostic entities record."""
        doc = {
            "genre": r.published,
            "confidence": round(r.confidence, 4),
            "top3": [{"genre": g, "p": round(p, 4)} for g, p in r.top3],
            "rms_db": round(r.rms_dbfs, 1),
            "stream_s": round(r.stream_s, 3),
            "time": _now(),
            "counters": self.counters(),
        }
        if self.classifier.tags is not None:
            # Always present with a tagger bundle (empty in silence): the level entity's attribute template reads it.
            doc["tags"] = [{"tag": t, "p": round(p, 3)} for t, p in r.top_tags]
            doc["sensors"] = r.sensors
        return json.dumps(doc, separators=(",", ":"))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _status(published: str) -> str:
    """``music`` for a genre, else the state's own name (uncertain, not_music, silence)."""
    return published if published in PUBLISHED_NON_GENRES else MUSIC
