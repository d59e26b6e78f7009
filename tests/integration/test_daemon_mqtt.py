"""The real genre-daemon (subprocess, real TFLite model, real audio) against a real mosquitto."""

from __future__ import annotations

import itertools
import json
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.integration.conftest import DaemonProc, state_of
from tests.support.mosquitto import MosquittoBroker
from tests.support.mqtt_client import MqttMessage, MqttProbe

LABELS = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")
OPTIONS = {*LABELS, "uncertain", "not_music", "silence"}
FAST = ["--speed", "20", "--loop", "--hop", "0.5"]


def online(m: Any) -> bool:
    return bool(m.text == "online")


def since_msg(first: MqttMessage) -> Callable[[MqttMessage], bool]:
    """A predicate for messages that arrived after ``first``."""
    return lambda m: m.received_at > first.received_at


def test_publishes_availability_discovery_genre_and_state(
    daemon: Callable[..., DaemonProc], mqtt_probe: Callable[..., MqttProbe], music_file: Path
) -> None:
    probe = mqtt_probe("#")
    d = daemon(music_file, extra=FAST)
    avail = probe.wait_for(d.topic("availability"), online, timeout=10)
    genre = probe.wait_for(d.topic("genre"), timeout=10)
    state_msg = probe.wait_for(d.topic("state"), lambda m: state_of(m.payload)["counters"]["windows"] >= 3, 15)
    assert genre.text in OPTIONS, genre.text
    assert genre.qos == 1 and avail.qos == 1

    state = state_of(state_msg.payload)
    assert state["genre"] in OPTIONS and state["model"] == "tiny-test"
    assert state["status"] in ("music", "uncertain", "not_music", "silence")
    assert 0.0 <= state["confidence"] <= 1.0
    assert len(state["top3"]) == 3 and all(t["genre"] in LABELS for t in state["top3"])
    assert -60 < state["rms_db"] < 0, state["rms_db"]
    assert state["time"].endswith("Z") and state["stream_s"] >= 3.0
    counters = state["counters"]
    for key in ("windows", "overflows", "source_reconnects", "mqtt_reconnects", "inference_ms", "inference_ms_avg"):
        assert key in counters, key
    assert counters["inference_ms_avg"] < 50, f"inference {counters['inference_ms_avg']} ms per window"

    configs = {m.topic: json.loads(m.payload) for m in probe.received(f"{d.discovery_prefix}/sensor/+/+/config")}
    assert set(configs) == {f"{d.discovery_prefix}/sensor/dev/{key}/config" for key in ("genre", "confidence", "level")}
    g = configs[f"{d.discovery_prefix}/sensor/dev/genre/config"]
    c = configs[f"{d.discovery_prefix}/sensor/dev/confidence/config"]
    assert g["state_topic"] == d.topic("genre") and g["device_class"] == "enum" and set(g["options"]) == OPTIONS
    assert "json_attributes_topic" not in g  # the genre entity records a row only when the genre changes
    assert c["state_topic"] == d.topic("diagnostics") and c["unit_of_measurement"] == "%"
    for cfg in configs.values():
        assert [a["topic"] for a in cfg["availability"]] == [d.topic("availability"), d.topic("state")]
    # `online` only after this run's first genre, so the previous run's retained genre never looks current.
    assert probe.received(d.topic("genre"))[0].received_at <= avail.received_at
    diag = state_of(probe.wait_for(d.topic("diagnostics"), timeout=5).payload)
    assert {"genre", "confidence", "top3", "rms_db", "counters", "time"} <= set(diag) and diag["genre"] in OPTIONS
    assert d.terminate() == 0


def test_state_published_at_most_once_per_hop_in_real_time(
    daemon: Callable[..., DaemonProc], mqtt_probe: Callable[..., MqttProbe], music_file: Path
) -> None:
    probe = mqtt_probe("#")
    d = daemon(music_file, extra=["--speed", "1", "--hop", "0.5"])
    probe.wait_for(d.topic("state"), lambda m: state_of(m.payload)["counters"]["windows"] >= 5, timeout=15)
    states = probe.received(d.topic("state"))
    # Judged on the states' own audio clock, not arrival times: a loaded broker or probe thread can
    # deliver two states a hop apart in the same millisecond. Once per hop: consecutive states lie at
    # least a hop of audio apart. Real time: no state holds more audio than the wall time since the
    # process started (a paced sample is released at the start of its 0.1 s input block, hence the slack).
    stream = [state_of(m.payload)["stream_s"] for m in states]
    gaps = [b - a for a, b in itertools.pairwise(stream)]
    assert gaps and min(gaps) >= 0.5 - 1e-3, f"state stream_s gaps {gaps} (hop 0.5 s)"
    ahead = [round(s - (m.received_at - d.started), 2) for s, m in zip(stream, states, strict=True)]
    assert max(ahead) < 0.5, f"audio ahead of the wall clock by {ahead} s at --speed 1"
    assert d.terminate() == 0


def test_sigterm_publishes_offline_and_exits_0_within_2s(
    daemon: Callable[..., DaemonProc], mqtt_probe: Callable[..., MqttProbe], music_file: Path
) -> None:
    probe = mqtt_probe("#")
    d = daemon(music_file, extra=FAST)
    probe.wait_for(d.topic("state"), timeout=15)
    t0 = time.monotonic()
    d.signal(signal.SIGTERM)
    rc = d.wait(timeout=5)
    took = time.monotonic() - t0
    assert rc == 0, d.log()
    assert took < 2.0, f"exit took {took:.2f} s"
    off = probe.wait_for(d.topic("availability"), lambda m: m.text == "offline", timeout=2)
    assert off.received_at - t0 < 2.0
    assert "Traceback" not in d.log()


def test_sigint_is_a_clean_stop_too(
    daemon: Callable[..., DaemonProc], mqtt_probe: Callable[..., MqttProbe], music_file: Path
) -> None:
    probe = mqtt_probe("#")
    d = daemon(music_file, extra=FAST)
    probe.wait_for(d.topic("availability"), online, timeout=10)
    d.signal(signal.SIGINT)
    assert d.wait(timeout=5) == 0, d.log()
    probe.wait_for(d.topic("availability"), lambda m: m.text == "offline", timeout=2)


def test_last_will_offline_after_sigkill(
    daemon: Callable[..., DaemonProc], mqtt_probe: Callable[..., MqttProbe], music_file: Path
) -> None:
    probe = mqtt_probe("#")
    d = daemon(music_file, extra=FAST)
    probe.wait_for(d.topic("availability"), online, timeout=10)
    since = time.monotonic()
    d.signal(signal.SIGKILL)
    d.wait(timeout=5)
    # The socket closes without DISCONNECT, so the broker sends the Will at once.
    probe.wait_for(d.topic("availability"), lambda m: m.text == "offline", timeout=5, since=since)


def test_file_end_flushes_state_then_offline_and_late_subscriber_sees_retained(
    daemon: Callable[..., DaemonProc], broker: MosquittoBroker, music_file: Path
) -> None:
    d = daemon(music_file, extra=["--speed", "0", "--hop", "1"])
    assert d.wait(timeout=30) == 0, d.log()
    # 30 s clip, 3 s window, 1 s hop -> 28 windows; the last state must have reached the broker.
    with MqttProbe(broker, f"{d.topic_root}/#") as late:
        state = late.wait_for(d.topic("state"), timeout=5)
        genre = late.wait_for(d.topic("genre"), timeout=5)
        avail = late.wait_for(d.topic("availability"), timeout=5)
    assert state.retain and genre.retain and avail.retain
    assert state_of(state.payload)["counters"]["windows"] == 28, state.text
    assert genre.text == state_of(state.payload)["genre"]
    assert avail.text == "offline"


def test_home_assistant_birth_resends_discovery(
    daemon: Callable[..., DaemonProc], mqtt_probe: Callable[..., MqttProbe], music_file: Path
) -> None:
    d = daemon(music_file, extra=FAST)
    probe = mqtt_probe([f"{d.discovery_prefix}/#", d.topic("state")])  # one connection: one order
    probe.wait_for(f"{d.discovery_prefix}/sensor/dev/genre/config", timeout=10)
    probe.wait_for(f"{d.discovery_prefix}/sensor/dev/confidence/config", timeout=10)
    since = time.monotonic()
    probe.publish(f"{d.discovery_prefix}/status", "online")
    again = probe.wait_for(f"{d.discovery_prefix}/sensor/dev/genre/config", timeout=5, since=since)
    # The rest of the re-sent set follows its genre config (the first connect's set may still be arriving).
    later = since_msg(again)
    probe.wait_for(f"{d.discovery_prefix}/sensor/dev/confidence/config", later, timeout=5, since=since)
    probe.wait_for(f"{d.discovery_prefix}/sensor/dev/level/config", later, timeout=5, since=since)
    assert json.loads(again.payload)["state_topic"] == d.topic("genre")
    before = time.monotonic()
    probe.publish(f"{d.discovery_prefix}/status", "offline")
    acked = time.monotonic()
    # Proof that "offline" re-sent nothing, without a quiet period: a state that reaches us after the
    # broker's PUBACK was taken by the broker after our PUBLISH, so the broker acknowledges it to the
    # daemon after delivering our PUBLISH there; the daemon's outbox waits for each acknowledgement and
    # sends discovery before states. A re-send caused by "offline" would come before the next state.
    first = probe.wait_for(d.topic("state"), timeout=10, since=acked)
    probe.wait_for(d.topic("state"), since_msg(first), timeout=10)
    assert not [m for m in probe.received(f"{d.discovery_prefix}/sensor/#") if m.received_at > before]
    assert d.terminate() == 0


def test_discovery_can_be_switched_off(
    daemon: Callable[..., DaemonProc], mqtt_probe: Callable[..., MqttProbe], music_file: Path
) -> None:
    d = daemon(music_file, extra=FAST, discovery="enabled = false\n")
    probe = mqtt_probe([f"{d.discovery_prefix}/#", f"{d.topic_root}/#"])
    probe.wait_for(d.topic("state"), timeout=10)
    assert not probe.received(f"{d.discovery_prefix}/#")
    assert d.terminate() == 0


def test_silence_then_music_gates_and_resampling(
    daemon: Callable[..., DaemonProc], mqtt_probe: Callable[..., MqttProbe], silence_then_music: Path
) -> None:
    probe = mqtt_probe("#")
    # The daemon opens its source before it connects and the outbox sends only the newest state, so
    # which states reach the broker depends on how fast the first connect is: judge each state on its
    # own stream_s and counters. 3 s windows, 1 s hop: the windows ending at 3, 4, 5 and 6 s hold only
    # the 6 s of digital silence, whatever the speed.
    d = daemon(silence_then_music, extra=["--speed", "5", "--hop", "1"])
    d.finish(probe, timeout=30)
    states = [state_of(m.payload) for m in probe.received(d.topic("state"))]
    genres = [m.text for m in probe.received(d.topic("genre"))]
    in_silence = [s for s in states if s["stream_s"] <= 6.0]
    for s in in_silence:
        assert s["status"] == "silence" and s["rms_db"] == -120.0 and s["top3"] == [], s
    if in_silence:  # connected during the silence: its genre went out first
        assert genres[0] == "silence", genres
    assert states[-1]["counters"]["silent_windows"] >= 4, states[-1]
    assert genres[-1] != "silence", genres
    assert "silence:" in d.log()


def test_classification_continues_while_broker_is_down(
    daemon: Callable[..., DaemonProc], broker_factory: Callable[..., MosquittoBroker], music_file: Path
) -> None:
    b = broker_factory()
    # Real time, not 20x: then the audio that falls in the outage is set by the clock, not by how many
    # windows a second this machine manages (real time is the daemon's promise on any machine).
    d = daemon(music_file, extra=["--speed", "1", "--loop", "--hop", "0.5"], target=b)
    with MqttProbe(b, f"{d.topic_root}/#") as probe:
        first = probe.wait_for(d.topic("state"), timeout=10)
    windows_before = state_of(first.payload)["counters"]["windows"]
    b.stop()  # retained messages are lost: the daemon must re-send them all
    down = time.monotonic()
    time.sleep(3.0)  # the outage itself: its length is what is measured below
    up = time.monotonic()
    b.start()
    with MqttProbe(b, f"{d.topic_root}/#") as probe:
        avail = probe.wait_for(d.topic("availability"), online, timeout=10)
        genre = probe.wait_for(d.topic("genre"), timeout=10)
        state = probe.wait_for(d.topic("state"), lambda m: state_of(m.payload)["counters"]["mqtt_reconnects"] >= 1, 10)
    counters = state_of(state.payload)["counters"]
    # Every hop of audio that came in while the broker was away was classified: at least the whole hops
    # inside [down, up], less one for the window still being computed when the daemon reconnected.
    due = int((up - down) / 0.5) - 1
    assert counters["windows"] - windows_before >= due, (due, counters)
    assert genre.text in OPTIONS and avail.retain is False
    assert d.terminate() == 0


def test_starts_and_classifies_with_no_broker_then_connects(
    daemon: Callable[..., DaemonProc], broker_factory: Callable[..., MosquittoBroker], music_file: Path
) -> None:
    b = broker_factory()
    b.stop()
    d = daemon(music_file, extra=FAST, target=b)
    deadline = time.monotonic() + 30
    while "ready in" not in d.log() and d.proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # start-up takes > 1.5 s on a loaded machine: count the time without a broker from READY
    time.sleep(1.5)
    assert d.proc.poll() is None, d.log()
    b.start()
    with MqttProbe(b, f"{d.topic_root}/#") as probe:
        state = probe.wait_for(d.topic("state"), timeout=10)
    assert state_of(state.payload)["counters"]["windows"] > 10
    assert d.terminate() == 0


def test_diagnostics_follow_the_configured_interval_of_audio(
    daemon: Callable[..., DaemonProc], mqtt_probe: Callable[..., MqttProbe], music_file: Path
) -> None:
    # Each diagnostics message is a recorder row per diagnostic entity in Home Assistant: its rate is the
    # configured interval of audio, not the hop (0.5 s here), whatever the playback speed. At 5x a message
    # is due every 1 s of wall time, so a busy machine's outbox never has to drop one for a newer one.
    probe = mqtt_probe("#")
    d = daemon(music_file, extra=["--speed", "5", "--loop", "--hop", "0.5"], discovery="diagnostics_interval_s = 5\n")
    probe.wait_for(d.topic("state"), lambda m: state_of(m.payload)["stream_s"] >= 25, timeout=20)
    assert d.terminate() == 0, d.log()
    stream = [state_of(m.payload)["stream_s"] for m in probe.received(d.topic("diagnostics"))]
    gaps = [b - a for a, b in itertools.pairwise(stream)]
    assert len(stream) >= 4 and stream[0] <= 3.5, stream  # the first one goes out with the first window
    assert all(5.0 <= g <= 5.5 for g in gaps), gaps  # the interval, rounded up to the next hop
