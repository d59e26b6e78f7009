"""MicSource through a private PulseAudio (PyAudio -> ALSA pulse plugin): real capture, device loss, reopen.

The full daemon-through-PulseAudio e2e is separate; these pin the source's own behaviour.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from daemon.mic import MicSource
from daemon.settings import SourceSettings
from daemon.source_base import OK, UNAVAILABLE
from tests.support.audio import dominant_frequency, rms_dbfs
from tests.support.pulse import PulseServer


def collect(src: MicSource, seconds: float, rate: int, timeout: float = 10.0) -> np.ndarray:
    parts: list[np.ndarray] = []
    got = 0
    deadline = time.monotonic() + timeout
    while got < seconds * rate and time.monotonic() < deadline:
        chunk = src.read(0.25)
        if chunk is not None:
            parts.append(chunk)
            got += chunk.size
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


def test_mic_captures_played_tone_as_mono_at_model_rate(pulse: PulseServer, make_tone_wav: Callable[..., Path]) -> None:
    tone = make_tone_wav("a660.wav", freq_hz=660.0, seconds=6.0, rate=48000, channels=2, level_dbfs=-12.0)
    src = MicSource(SourceSettings(device="pulse"), 22050, threading.Event())
    src.open()
    try:
        assert src.capture_rate in (44100, 48000) and src.channels in (1, 2)
        player = pulse.play(tone)
        # Wait for the tone itself, not a fixed 0.5 s: how long paplay takes to start is the machine's business.
        deadline = time.monotonic() + 10
        while rms_dbfs(collect(src, 0.1, 22050)) < -40 and time.monotonic() < deadline:
            pass
        audio = collect(src, 2.0, 22050)
        player.terminate()
    finally:
        src.close()
    assert audio.dtype == np.float32 and audio.size >= 2 * 22050 - 2205
    assert dominant_frequency(audio, 22050) == pytest.approx(660, abs=5)
    assert src.status == OK and src.stats.dropped_chunks == 0


def test_mic_reopens_after_the_sound_server_vanishes(pulse_factory: Callable[[], PulseServer]) -> None:
    server = pulse_factory()
    with server.env_applied():
        src = MicSource(SourceSettings(device="pulse", retry_max_s=1.0), 22050, threading.Event())
        src.open()
        try:
            assert collect(src, 0.3, 22050).size > 0
            server.kill()
            deadline = time.monotonic() + 10
            while src.status != UNAVAILABLE and time.monotonic() < deadline:
                src.read(0.1)
            assert src.status == UNAVAILABLE
            server.start()
            deadline = time.monotonic() + 15
            while src.stats.reconnects == 0 and time.monotonic() < deadline:
                src.read(0.1)
            assert src.stats.reconnects >= 1 and src.status == OK and src.generation >= 1
            assert collect(src, 0.3, 22050).size > 0
        finally:
            src.close()


def test_daemon_publishes_unavailable_while_the_mic_is_gone_then_recovers(
    pulse_factory: Callable[[], PulseServer], daemon: Callable[..., Any], mqtt_probe: Callable[..., Any]
) -> None:
    server = pulse_factory()
    probe = mqtt_probe("#")
    d = daemon(
        "mic", extra=["--device", "pulse", "--hop", "0.5"], config="[source]\nretry_max_s = 1.0\n", env=server.env
    )
    # A null sink's monitor is digital silence: the gate answers without the model.
    probe.wait_for(d.topic("state"), lambda m: json.loads(m.payload)["status"] == "silence", timeout=15)
    server.kill()
    gone = probe.wait_for(d.topic("state"), lambda m: json.loads(m.payload)["status"] == "unavailable", timeout=10)
    assert d.proc.poll() is None, d.log()
    server.start()
    back = probe.wait_for(
        d.topic("state"),
        lambda m: (
            json.loads(m.payload)["counters"]["source_reconnects"] >= 1
            and json.loads(m.payload)["status"] != "unavailable"
        ),
        timeout=20,
    )
    print(f"unavailable -> back in {back.received_at - gone.received_at:.1f} s")
    assert d.terminate() == 0, d.log()
    assert "reopening" in d.log() or "unavailable" in d.log()
