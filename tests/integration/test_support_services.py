"""The shared fixtures drive real components: mosquitto, PulseAudio + PyAudio, HA's schema."""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.audio import dominant_frequency, rms_dbfs
from tests.support.mosquitto import MosquittoBroker
from tests.support.mqtt_client import MqttProbe, try_connect
from tests.support.pulse import PulseServer, record_pyaudio
from tests.support.waiting import wait_until

ProbeFactory = Callable[..., MqttProbe]
BrokerFactory = Callable[..., MosquittoBroker]


# -- mosquitto ---------------------------------------------------------------


def test_pubsub_through_plain_broker(broker: MosquittoBroker, mqtt_probe: ProbeFactory, topic_prefix: str) -> None:
    sub = mqtt_probe(f"{topic_prefix}/#")
    pub = mqtt_probe(f"{topic_prefix}/unused")
    t0 = time.monotonic()
    pub.publish(f"{topic_prefix}/genre", "jazz", qos=1)
    msg = sub.wait_for(f"{topic_prefix}/genre", lambda m: m.payload == b"jazz", timeout=5)
    assert msg.retain is False
    assert msg.received_at - t0 < 1.0, f"delivery took {msg.received_at - t0:.3f} s"


def test_retained_message_reaches_late_subscriber(mqtt_probe: ProbeFactory, topic_prefix: str) -> None:
    topic = f"{topic_prefix}/config"
    mqtt_probe(f"{topic_prefix}/unused").publish(topic, b'{"a": 1}', retain=True)
    late = mqtt_probe(topic)
    msg = late.wait_for(topic, timeout=5)
    assert msg.retain is True and msg.payload == b'{"a": 1}', msg
    # Clearing it keeps the shared broker clean for other tests.
    late.publish(topic, b"", retain=True)


def test_wait_for_failure_lists_what_arrived(mqtt_probe: ProbeFactory, topic_prefix: str) -> None:
    probe = mqtt_probe(f"{topic_prefix}/#")
    probe.publish(f"{topic_prefix}/a", "1")
    probe.wait_for(f"{topic_prefix}/a")
    with pytest.raises(AssertionError, match=r"(?s)no message on .*/b.*/a retain=False"):
        probe.wait_for(f"{topic_prefix}/b", timeout=0.2)


def test_restart_keeps_port_and_clients_reconnect(broker_factory: BrokerFactory, mqtt_probe: ProbeFactory) -> None:
    b = broker_factory()
    port = b.port
    probe = mqtt_probe("t/#", broker=b)
    t0 = time.monotonic()
    b.restart()
    restart_s = time.monotonic() - t0
    assert b.port == port and b.running
    probe.wait_connected(timeout=10)
    probe.publish("t/after", "x")
    probe.wait_for("t/after", timeout=5)
    assert restart_s < 2.0, f"restart took {restart_s:.3f} s"

    b.kill()
    assert not b.running
    b.start()
    assert b.port == port
    probe.wait_connected(timeout=10)


def test_pause_resume(broker_factory: BrokerFactory, mqtt_probe: ProbeFactory) -> None:
    b = broker_factory()
    probe = mqtt_probe("p/#", broker=b)
    b.pause()
    info = probe.client.publish("p/x", "during-pause", qos=1)
    time.sleep(0.3)
    assert not info.is_published(), "a paused broker must not acknowledge"
    b.resume()
    probe.wait_for("p/x", timeout=5)


def test_auth_rejects_wrong_password_and_accepts_right_one(broker_factory: BrokerFactory) -> None:
    b = broker_factory(users={"pi": "correct horse"}, allow_anonymous=False)
    wrong = try_connect(b, username="pi", password="battery staple")
    assert wrong.reason_code is not None and wrong.reason_code.is_failure, str(wrong)
    # MQTT 3.1.1 CONNACK 5 is mapped by paho 2.x to "Not authorized" (v5 code 135).
    assert wrong.reason_code == "Not authorized", str(wrong)
    anonymous = try_connect(b)
    assert anonymous.reason_code == "Not authorized", str(anonymous)
    right = try_connect(b, username="pi", password="correct horse")
    assert right.ok, str(right)


def test_tls_right_ca_works_wrong_ca_and_plaintext_fail(
    broker_factory: BrokerFactory, mqtt_probe: ProbeFactory
) -> None:
    b = broker_factory(tls=True)
    assert b.tls is not None and b.tls_port is not None

    ok = try_connect(b, use_tls=True)
    assert ok.ok, str(ok)

    wrong_ca = try_connect(b, use_tls=True, ca_cert=b.tls.other_ca_cert)
    assert isinstance(wrong_ca.error, ssl.SSLCertVerificationError), str(wrong_ca)

    plain_on_tls_port = try_connect(b, port=b.tls_port, timeout=3)
    assert not plain_on_tls_port.ok and plain_on_tls_port.reason_code is None, str(plain_on_tls_port)

    probe = mqtt_probe("s/#", broker=b, use_tls=True)
    probe.publish("s/1", "secure")
    assert probe.wait_for("s/1").payload == b"secure"


def test_tls_with_auth_and_client_cert(broker_factory: BrokerFactory, mqtt_probe: ProbeFactory) -> None:
    b = broker_factory(tls=True, require_client_cert=True, users={"pi": "pw"}, allow_anonymous=False)
    assert b.tls is not None
    no_cert = try_connect(b, use_tls=True, username="pi", password="pw")
    assert not no_cert.ok, str(no_cert)
    probe = mqtt_probe(
        "c/#",
        broker=b,
        use_tls=True,
        username="pi",
        password="pw",
        client_cert=b.tls.client_cert,
        client_key=b.tls.client_key,
    )
    probe.publish("c/1", "ok")
    probe.wait_for("c/1")


# -- PulseAudio ----------------------------------------------------------------


def test_pyaudio_lists_pulse_input(pulse: PulseServer) -> None:
    import pyaudio

    pa = pyaudio.PyAudio()
    try:
        inputs = [
            str(pa.get_device_info_by_index(i)["name"])
            for i in range(pa.get_device_count())
            if int(pa.get_device_info_by_index(i)["maxInputChannels"]) > 0
        ]
    finally:
        pa.terminate()
    assert {"pulse", "default"} & set(inputs), f"PyAudio inputs: {inputs}"


def test_paplay_tone_is_recorded_by_pyaudio(pulse: PulseServer, make_tone_wav: Callable[..., Path]) -> None:
    rate = 44100
    wav = make_tone_wav("1k.wav", freq_hz=1000.0, seconds=4.0, rate=rate, channels=2)
    player = pulse.play(wav)
    try:
        # Wait for the tone itself, not a fixed 0.4 s: how long paplay takes to start is the machine's business.
        wait_until(
            lambda: rms_dbfs(record_pyaudio(0.1, rate=rate, channels=2, device_name="pulse")) > -40,
            timeout=10,
            what="the tone at the sink's monitor",
        )
        t0 = time.monotonic()
        audio = record_pyaudio(1.0, rate=rate, channels=2, device_name="pulse")
        took = time.monotonic() - t0
    finally:
        player.terminate()
        player.wait(timeout=5)
    freq = dominant_frequency(audio, rate)
    level = rms_dbfs(audio)
    figures = f"shape={audio.shape} dominant={freq:.2f} Hz rms={level:.1f} dBFS read_time={took:.2f} s"
    assert audio.shape == (rate, 2), figures
    assert level > -20.0, f"too quiet, is vsink.monitor the source? {figures}"
    assert abs(freq - 1000.0) <= 20.0, figures


def test_pulse_kill_and_start_again(pulse_factory: Callable[[], PulseServer]) -> None:
    server = pulse_factory()
    first_pid = server.pid
    server.kill()
    assert not server.running
    server.start()
    assert server.running and server.pid != first_pid
    assert server.source_name in server.pactl("list", "short", "sources")


def test_audio_helpers_write_what_they_promise(
    make_tone_wav: Callable[..., Path], make_noise_wav: Callable[..., Path], speech_wav: Path
) -> None:
    import soundfile as sf

    tone, rate = sf.read(str(make_tone_wav("a440.wav", freq_hz=440.0, seconds=0.5, channels=1)))
    assert rate == 44100 and tone.shape == (22050,), (rate, tone.shape)
    assert abs(dominant_frequency(tone, rate) - 440.0) < 1.0
    noise, _ = sf.read(str(make_noise_wav("n.wav", level_dbfs=-20.0, seconds=0.5)))
    assert abs(rms_dbfs(noise) + 20.0) < 0.5, rms_dbfs(noise)
    info = sf.info(str(speech_wav))
    assert info.samplerate == 22050 and info.duration > 1.0, info


def test_gtzan_dir_has_genre_folders(gtzan_dir: Path) -> None:
    genres = sorted(p.name for p in gtzan_dir.iterdir() if p.is_dir())
    assert {"blues", "jazz", "metal"} <= set(genres), genres
