"""The real capture path: PulseAudio (44.1 kHz stereo null sink) -> ALSA pulse plugin -> PyAudio ->
MicSource -> the daemon's model input, with real music played by ``paplay`` and the shipped model.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from daemon.mic import MicSource
from daemon.settings import SourceSettings
from tests.integration.conftest import DaemonProc
from tests.support.audio import dominant_frequency
from tests.support.mqtt_client import MqttMessage, MqttProbe
from tests.support.pulse import PulseServer

LABELS = {"blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock"}
STEREO_44K = "[source]\nrate = 44100\nchannels = 2\nretry_max_s = 1.0\n"


def status(m: MqttMessage) -> str:
    return str(json.loads(m.payload)["status"])


@pytest.fixture
def music_44k_stereo(tmp_path: Path, music_file: Path) -> Path:
    """The 30 s GTZAN rock clip as a 44.1 kHz stereo wav (what a phone or a CD would send)."""
    from edge.audio import load_audio

    x = load_audio(music_file, 44100)
    path = tmp_path / "rock-44k-stereo.wav"
    sf.write(str(path), np.stack([x, x], axis=1), 44100, subtype="PCM_16")
    return path


def test_daemon_on_pulse_classifies_played_music_loses_the_device_and_recovers(
    pulse_factory: Callable[[], PulseServer],
    daemon: Callable[..., DaemonProc],
    mqtt_probe: Callable[..., MqttProbe],
    music_44k_stereo: Path,
    shipped_bundle: Path,
) -> None:
    server = pulse_factory()
    probe = mqtt_probe("#")
    d = daemon(
        "mic", model=shipped_bundle, extra=["--device", "pulse", "--hop", "1"], config=STEREO_44K, env=server.env
    )
    probe.wait_for(d.topic("state"), timeout=15)  # capturing (the null sink's silence)
    t0 = time.monotonic()
    server.play(music_44k_stereo)
    music = probe.wait_for(d.topic("state"), lambda m: status(m) == "music", timeout=15, since=t0)
    genre = probe.wait_for(d.topic("genre"), lambda m: m.text in LABELS, timeout=10, since=t0)
    first_s = music.received_at - t0
    doc: dict[str, Any] = json.loads(music.payload)
    assert "mic 'pulse': 44100 Hz, 2 ch" in d.log(), d.log()

    gone_t = time.monotonic()
    server.kill()  # the sound server dies mid-song
    gone = probe.wait_for(d.topic("state"), lambda m: status(m) == "unavailable", timeout=10, since=gone_t)
    assert d.proc.poll() is None, d.log()
    back_t = time.monotonic()
    server.start()
    server.play(music_44k_stereo)
    again = probe.wait_for(
        d.topic("state"),
        lambda m: status(m) == "music" and json.loads(m.payload)["counters"]["source_reconnects"] >= 1,
        timeout=30,
        since=back_t,
    )
    assert d.terminate() == 0, d.log()
    assert "Traceback" not in d.log()
    print(
        f"pulse e2e: first music state {first_s:.1f} s after paplay ({genre.text}, conf {doc['confidence']:.2f}, "
        f"rms {doc['rms_db']} dB); 'unavailable' {gone.received_at - gone_t:.1f} s after the kill; "
        f"music again {again.received_at - back_t:.1f} s after the server returned"
    )


def test_1khz_tone_at_44k_stereo_reaches_the_model_input_at_1khz(
    pulse_factory: Callable[[], PulseServer], make_tone_wav: Callable[..., Path], shipped_bundle: Path
) -> None:
    from daemon.cli import lite_runtime
    from edge.bundle import load_bundle
    from edge.decide.classifier import Classifier, WindowResult

    bundle = load_bundle(shipped_bundle, 1, lite_runtime(""))
    tone = make_tone_wav("1k.wav", freq_hz=1000.0, seconds=8.0, rate=44100, channels=2, level_dbfs=-12.0)
    server = pulse_factory()
    with server.env_applied():
        src = MicSource(
            SourceSettings(device="pulse", rate=44100, channels=2), bundle.spec.sample_rate, threading.Event()
        )
        src.open()
        try:
            assert (src.capture_rate, src.channels) == (44100, 2)
            player = server.play(tone)
            results: list[WindowResult] = []
            # The first loud window may hold only a sliver of the tone (paplay starts when the machine lets
            # it); a window span of hops later, a window lies wholly inside the tone however late that was.
            hop_s = 0.5
            needed = int(np.ceil(bundle.spec.window_span_samples / bundle.spec.sample_rate / hop_s)) + 1
            clf = Classifier(bundle.spec, bundle.model, bundle.decision, hop_s)
            deadline = time.monotonic() + 15
            while len(loud := [r for r in results if r.rms_dbfs > -30]) < needed and time.monotonic() < deadline:
                chunk = src.read(0.25)
                if chunk is not None and (r := clf.push(chunk)) is not None:
                    results.append(r)
            window = clf.ring.latest()  # exactly the samples behind the last classified window
            player.kill()
        finally:
            src.close()
    levels = [round(r.rms_dbfs, 1) for r in results]
    assert len(loud) >= needed, f"{len(loud)} of {needed} windows with the tone in 15 s: {levels}"
    assert len(window) == bundle.spec.window_span_samples
    freq = dominant_frequency(window, bundle.spec.sample_rate)
    level = results[-1].rms_dbfs
    # A -12 dBFS-peak sine has an RMS of -15.05 dBFS; both channels carry it, so the mono mix keeps it.
    assert freq == pytest.approx(1000.0, abs=2.0), f"1 kHz played, {freq:.1f} Hz at the model input"
    assert level == pytest.approx(-15.05, abs=1.5), f"RMS {level:.2f} dBFS at the model input (expected -15.05)"
    print(
        f"1 kHz @ 44.1 kHz stereo -> {freq:.2f} Hz, {level:.2f} dBFS at the model's {bundle.spec.sample_rate} Hz input"
    )


def test_a_stalled_consumer_moves_the_overflow_counters(pulse_factory: Callable[[], PulseServer]) -> None:
    server = pulse_factory()
    with server.env_applied():
        settings = SourceSettings(device="pulse", chunk_s=0.1, queue_s=0.5)
        src = MicSource(settings, 22050, threading.Event())
        src.open()
        try:
            time.sleep(2.5)  # nobody reads: 25 chunks captured into a 5-chunk queue
            held = src._queue.qsize()
            dropped = src.stats.dropped_chunks
            got = sum(1 for _ in range(held + 2) if src.read(0.3) is not None)
        finally:
            src.close()
    assert held <= 5, f"queue grew to {held} chunks (capacity 5)"
    assert dropped >= 10, f"only {dropped} chunks counted as dropped after a 2.5 s stall"
    assert got >= held
    print(f"consumer stalled 2.5 s: {dropped} chunks dropped and counted, queue held at {held} (capacity 5)")


def test_a_frozen_daemon_counts_overflows_or_drops_in_its_state(
    pulse_factory: Callable[[], PulseServer], daemon: Callable[..., DaemonProc], mqtt_probe: Callable[..., MqttProbe]
) -> None:
    server = pulse_factory()
    probe = mqtt_probe("#")
    d = daemon("mic", extra=["--device", "pulse", "--hop", "0.5"], config=STEREO_44K, env=server.env)
    probe.wait_for(d.topic("state"), timeout=15)
    d.signal(signal.SIGSTOP)  # the whole process stalls; the sound server keeps producing
    time.sleep(3.0)
    d.signal(signal.SIGCONT)
    t0 = time.monotonic()

    def lost(m: MqttMessage) -> bool:
        c = json.loads(m.payload)["counters"]
        return bool(c["overflows"] + c["dropped_chunks"] > 0)

    state = probe.wait_for(d.topic("state"), lost, timeout=10, since=t0)
    c = json.loads(state.payload)["counters"]
    assert d.terminate() == 0, d.log()
    print(f"3 s SIGSTOP: overflows {c['overflows']}, dropped_chunks {c['dropped_chunks']}")


def test_loss_detector_ignores_drift_and_jitter_but_sees_a_stall() -> None:
    from daemon.mic import LossDetector

    rng = np.random.default_rng(0)
    det = LossDetector(44100)
    frames, t, lost = 4410, 0.0, 0.0
    for _ in range(3600 * 10):  # 1 h of 0.1 s reads; the card's clock 200 ppm slow, 0-80 ms wake-up jitter
        t += 0.1 * 1.0002
        lost += det.update(t + rng.uniform(0, 0.08), frames, waited=True)
    assert lost == 0.0, f"{lost:.2f} s counted as lost without any loss"
    t += 3.0  # stalled 3 s; the first reads come back at once from the buffer (not waited), then caught up
    for _ in range(5):
        lost += det.update(t, frames, waited=False)
    for _ in range(20):
        t += 0.1
        lost += det.update(t, frames, waited=True)
    assert 2.0 < lost < 3.1, f"{lost:.2f} s found lost after a 3 s stall"
