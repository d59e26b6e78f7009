"""Shared fixtures: real mosquitto, PulseAudio, a real Home Assistant's venv, test audio.

The logic lives in ``tests/support/``; this file only wires it to pytest.
Set ``GENRE_PI_REQUIRE_SERVICES=1`` (CI) to turn "service unavailable" skips
into failures, so a missing package cannot pass silently.

Quick reference (see each fixture's docstring for an example):

- ``broker`` (session) plain mosquitto; share it, isolate with ``topic_prefix``.
- ``broker_factory`` (function) ``broker_factory(users=..., tls=True, ...)``.
- ``mqtt_probe`` (function) ``mqtt_probe("prefix/#", broker=b, **auth)`` -> MqttProbe.
- ``topic_prefix`` (function) unique topic prefix string.
- ``pulse`` (session) PulseServer with vsink; env applied in-process.
- ``pulse_factory`` (function) private PulseServer, for kill/restart tests.
- ``ha_venv`` (session) Path of the cached Home Assistant venv (tests/support/ha_venv.py).
- ``gtzan_dir`` (session) Path of the GTZAN copy in shared/.
- ``make_tone_wav`` / ``make_noise_wav`` / ``make_speech_wav`` (function) wav writers into tmp_path.
- ``speech_wav`` (function) a ready espeak-ng speech clip.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import audio
from tests.support.ha_venv import HaUnavailable, ensure_ha_venv
from tests.support.mosquitto import MosquittoBroker, mosquitto_available
from tests.support.mqtt_client import MqttProbe, unique_prefix
from tests.support.pulse import PulseServer, pulse_available
from tests.support.services import unavailable

REPO_ROOT = Path(__file__).resolve().parents[1]

# Model fixtures (tiny_bundle, bundle_copy, shipped_bundle) live beside the edge tests' helpers.
pytest_plugins = ("tests.edge_fixtures",)


# -- MQTT ------------------------------------------------------------------


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoBroker]:
    """Session-wide plain broker on 127.0.0.1 (anonymous allowed). Never stop/restart it in a test.

    Example::

        def test_state(broker, mqtt_probe, topic_prefix):
            probe = mqtt_probe(f"{topic_prefix}/#")
            run_daemon(["--mqtt-host", broker.host, "--mqtt-port", str(broker.port), ...])
            probe.wait_for(f"{topic_prefix}/genre", timeout=10)
    """
    if not mosquitto_available():
        unavailable("mosquitto not installed: apt-get install mosquitto mosquitto-clients")
    b = MosquittoBroker(tmp_path_factory.mktemp("mosquitto"))
    b.start()
    yield b
    b.stop()


@pytest.fixture
def broker_factory(tmp_path: Path) -> Iterator[Callable[..., MosquittoBroker]]:
    """Make started brokers with options; all are stopped after the test.

    Keyword arguments are those of :class:`MosquittoBroker` (``users``,
    ``allow_anonymous``, ``tls``, ``require_client_cert``, ``extra_config``).

    Example::

        def test_reconnect(broker_factory, mqtt_probe):
            b = broker_factory(users={"pi": "pw"}, allow_anonymous=False, tls=True)
            probe = mqtt_probe("#", broker=b, username="pi", password="pw", use_tls=True)
            b.restart(down_seconds=2)       # same ports
            probe.wait_connected(timeout=10)
    """
    if not mosquitto_available():
        unavailable("mosquitto not installed: apt-get install mosquitto mosquitto-clients")
    made: list[MosquittoBroker] = []

    def make(**kwargs: Any) -> MosquittoBroker:
        b = MosquittoBroker(tmp_path / f"mosquitto-{len(made)}", **kwargs)
        made.append(b)
        return b.start()

    yield make
    for b in made:
        b.stop()


@pytest.fixture
def mqtt_probe(request: pytest.FixtureRequest) -> Iterator[Callable[..., MqttProbe]]:
    """Factory for :class:`MqttProbe` subscribers; all are closed after the test.

    ``mqtt_probe(topic_filter="#", broker=None, **kwargs)``; ``broker``
    defaults to the session ``broker``; kwargs go to :class:`MqttProbe`
    (``username``, ``password``, ``use_tls``, ``ca_cert``, ``qos``...).

    Example::

        probe = mqtt_probe(f"{topic_prefix}/#")
        probe.publish(f"{topic_prefix}/cmd", "ping")
        msg = probe.wait_for(f"{topic_prefix}/cmd", lambda m: m.text == "ping", timeout=2)
    """
    made: list[MqttProbe] = []

    def make(topic_filter: str | list[str] = "#", broker: MosquittoBroker | None = None, **kwargs: Any) -> MqttProbe:
        target = broker if broker is not None else request.getfixturevalue("broker")
        probe = MqttProbe(target, topic_filter, **kwargs)
        made.append(probe)
        return probe

    yield make
    for p in made:
        p.close()


@pytest.fixture
def topic_prefix(request: pytest.FixtureRequest) -> str:
    """A topic prefix unique to this test, e.g. ``genre-pi-test/test_state-3f9a1c2b``."""
    return unique_prefix(re.sub(r"[^A-Za-z0-9_-]", "_", request.node.name)[:40])


# -- Audio -----------------------------------------------------------------


def _start_pulse(workdir: Path) -> PulseServer:
    reason = pulse_available()
    if reason:
        unavailable(reason)
    server = PulseServer(workdir)
    try:
        return server.start()
    except RuntimeError as exc:
        unavailable(f"PulseAudio cannot start here: {exc}")


@pytest.fixture(scope="session")
def pulse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PulseServer]:
    """Session PulseAudio with null sink ``vsink``; its env is applied to this process.

    Create ``pyaudio.PyAudio()`` inside the test (after this fixture), pass
    ``pulse.env`` to subprocesses. A test that kills it must ``start()`` it
    again (or use ``pulse_factory``).

    Example::

        def test_capture(pulse, make_tone_wav):
            player = pulse.play(make_tone_wav("a.wav", freq_hz=440, seconds=3))
            proc = subprocess.Popen(["genre-daemon", ...], env={**os.environ, **pulse.env})
            ...
            player.wait(timeout=5)
    """
    server = _start_pulse(tmp_path_factory.mktemp("pulse"))
    old = server.apply_env()
    yield server
    server.stop()
    server.restore_env(old)


@pytest.fixture
def pulse_factory(tmp_path: Path) -> Iterator[Callable[[], PulseServer]]:
    """Private PulseAudio servers (own socket), stopped after the test; env is *not* applied.

    Example::

        server = pulse_factory()
        daemon = subprocess.Popen([...], env={**os.environ, **server.env})
        server.kill(); time.sleep(2); server.start()    # device vanishes and returns
    """
    made: list[PulseServer] = []

    def make() -> PulseServer:
        server = _start_pulse(tmp_path / f"pulse-{len(made)}")
        made.append(server)
        return server

    yield make
    for s in made:
        s.stop()


@pytest.fixture
def make_tone_wav(tmp_path: Path) -> Callable[..., Path]:
    """``make_tone_wav(name, freq_hz=1000, seconds=1, rate=44100, channels=2, level_dbfs=-6)`` -> Path.

    Example: ``wav = make_tone_wav("a440.wav", freq_hz=440.0, seconds=3.0)``
    """

    def make(name: str = "tone.wav", **kwargs: Any) -> Path:
        return audio.write_tone_wav(tmp_path / name, **kwargs)

    return make


@pytest.fixture
def make_noise_wav(tmp_path: Path) -> Callable[..., Path]:
    """``make_noise_wav(name, seconds=1, rate=44100, channels=2, level_dbfs=-20, color="white", seed=0)``.

    Example: ``wav = make_noise_wav("pink.wav", color="pink", seconds=5)``
    """

    def make(name: str = "noise.wav", **kwargs: Any) -> Path:
        return audio.write_noise_wav(tmp_path / name, **kwargs)

    return make


@pytest.fixture
def make_speech_wav(tmp_path: Path) -> Callable[..., Path]:
    """``make_speech_wav(name, text=..., voice="en")`` -> 22050 Hz mono wav spoken by espeak-ng."""
    if not audio.espeak_available():
        unavailable("espeak-ng not installed: apt-get install espeak-ng")

    def make(name: str = "speech.wav", text: str = "this is not music, this is speech", voice: str = "en") -> Path:
        return audio.write_speech_wav(tmp_path / name, text, voice=voice)

    return make


@pytest.fixture
def speech_wav(make_speech_wav: Callable[..., Path]) -> Path:
    """A ~2 s espeak-ng speech clip (22050 Hz mono), e.g. for "speech is not music" tests."""
    return make_speech_wav()


# -- Data and schemas --------------------------------------------------------


@pytest.fixture(scope="session")
def gtzan_dir() -> Path:
    """``<repo>/../shared/gtzan`` (genre subfolders + manifest.csv); skips if absent.

    Example: ``clips = sorted((gtzan_dir / "jazz").glob("*.wav"))[:3]``
    """
    path = (REPO_ROOT.parent / "shared" / "gtzan").resolve()
    if not path.is_dir():
        pytest.skip(f"GTZAN data not found at {path}")
    return path


@pytest.fixture(scope="session")
def ha_venv() -> Path:
    """The venv of a pinned Home Assistant core (built once and cached; skips without Python >= 3.13).

    Example::

        def test_in_home_assistant(ha_venv, tmp_path):
            ha = HomeAssistant(tmp_path / "ha", venv=ha_venv).start()   # tests/support/homeassistant.py
    """
    try:
        return ensure_ha_venv()
    except HaUnavailable as exc:
        unavailable(str(exc))
