"""Security against real components: TLS + password_file on a mosquitto with a self-signed CA,
secrets kept out of logs/ps/state, inbound MQTT limited to the HA birth topic, and the hardened unit
keeping /dev/snd reachable. (A real Home Assistant reads the discovery payloads in test_home_assistant.py.)
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.integration.conftest import DaemonProc, state_of
from tests.integration.test_daemon_cli import unit_for_this_machine
from tests.support.mosquitto import MosquittoBroker
from tests.support.mqtt_client import MqttProbe
from tests.support.waiting import lines_with, wait_until

FAST = ["--speed", "20", "--loop", "--hop", "0.5"]
SECRET = "S3cr3t-Pa55-never-printed"


@pytest.mark.parametrize("via", ["password_file", "CREDENTIALS_DIRECTORY"])
def test_tls_and_password_end_to_end_secret_never_visible(
    via: str,
    tmp_path: Path,
    daemon: Callable[..., DaemonProc],
    broker_factory: Callable[..., MosquittoBroker],
    music_file: Path,
) -> None:
    b = broker_factory(users={"pi": SECRET}, allow_anonymous=False, tls=True)
    assert b.tls is not None and b.tls_port is not None
    mqtt = f"username = 'pi'\ntls = true\nca_file = '{b.tls.ca_cert}'\n"
    env: dict[str, str] = {}
    if via == "password_file":
        (tmp_path / "pw").write_text(SECRET + "\n")
        mqtt += f"password_file = '{tmp_path / 'pw'}'\n"
    else:
        (tmp_path / "creds").mkdir()
        (tmp_path / "creds" / "mqtt_password").write_text(SECRET)
        env["CREDENTIALS_DIRECTORY"] = str(tmp_path / "creds")
    t0 = time.monotonic()
    d = daemon(
        music_file, target=b, extra=[*FAST, "--mqtt-port", str(b.tls_port), "--log-level", "debug"], mqtt=mqtt, env=env
    )
    auth: dict[str, Any] = {"username": "pi", "password": SECRET, "use_tls": True, "ca_cert": b.tls.ca_cert}
    with MqttProbe(b, "#", **auth) as probe:
        probe.wait_for(d.topic("availability"), lambda m: m.text == "online", timeout=10)
        took = time.monotonic() - t0
        probe.wait_for(d.topic("state"), lambda m: state_of(m.payload)["counters"]["windows"] >= 3, timeout=10)
        ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, timeout=10).stdout
        environ = "\n".join(f"{k}={v}" for k, v in psutil.Process(d.proc.pid).environ().items())
        published = b"\n".join(m.payload for m in probe.messages)
    assert d.terminate() == 0
    for where, text in (("log", d.log()), ("ps", ps), ("environment", environ), ("MQTT payloads", published.decode())):
        assert SECRET not in text, f"the password is visible in the daemon's {where}"
    assert "connected to MQTT" in d.log()
    print(f"TLS + password via {via}: online {took:.2f} s after start; secret in none of log/ps/env/payloads")


def test_plain_client_on_the_tls_listener_fails_clearly(
    daemon: Callable[..., DaemonProc], broker_factory: Callable[..., MosquittoBroker], music_file: Path
) -> None:
    b = broker_factory(tls=True)
    assert b.tls_port is not None
    d = daemon(music_file, target=b, extra=[*FAST, "--mqtt-port", str(b.tls_port)])
    # "Exactly one line" needs repeated failures: wait for three plain connections the broker's TLS
    # listener rejected (backoff 0.5-2 s), however long the daemon took to start, not a fixed 3 s.
    wait_until(
        lambda: len(lines_with(b.log_text(), "wrong version number")) >= 3,
        timeout=30,
        what="three plain connections rejected by the TLS listener",
        log=d.log,
    )
    assert d.proc.poll() is None, d.log()
    assert d.terminate() == 0
    errors = [line for line in d.log().splitlines() if "ERROR" in line and "mqtt" in line]
    assert errors, f"nothing said why the broker dropped a plain connection on its TLS port:\n{d.log()}"
    assert len(errors) == 1 and "TLS" in errors[0], errors
    print(f"plain -> TLS listener: {errors[0].split(': ', 1)[-1]}")


def test_inbound_mqtt_only_the_ha_birth_topic_and_hostile_payloads_do_nothing(
    daemon: Callable[..., DaemonProc], broker_factory: Callable[..., MosquittoBroker], music_file: Path
) -> None:
    b = broker_factory()
    d = daemon(music_file, target=b, extra=FAST)
    birth = f"{d.discovery_prefix}/status"
    with MqttProbe(b, "#") as probe:
        probe.wait_for(f"{d.discovery_prefix}/sensor/dev/genre/config", timeout=10)
        probe.wait_for(f"{d.discovery_prefix}/sensor/dev/confidence/config", timeout=10)
        probe.wait_for(f"{d.discovery_prefix}/sensor/dev/level/config", timeout=10)  # the whole set is in
        # The SUBSCRIBE goes out from the connect callback, beside the outbox's discovery: wait for the broker's line.
        subs = wait_until(
            lambda: re.findall(r"genre-daemon-dev \d (\S+)", b.log_text()), timeout=10, what="the daemon's SUBSCRIBE"
        )
        assert subs == [birth], f"the daemon subscribed to {subs}"
        rss0 = psutil.Process(d.proc.pid).memory_info().rss
        since = time.monotonic()
        hostile: list[tuple[str, bytes]] = [
            (birth, b"offline"),
            (birth, bytes(range(256)) * 4),
            (birth, b"\xff\xfeo\0n\0l\0i\0n\0e\0"),
            (birth, b"online" + b" " * (16 * 2**20)),  # 16 MB that strips to "online"
            (d.topic("genre"), b"metal"),
            (d.topic("set"), b'{"genre": "jazz"}'),
            (f"{d.topic_root}/cmd", b"\0" * 1024),
        ]
        for topic, payload in hostile:
            probe.publish(topic, payload)
        acked = time.monotonic()
        # Proof that nothing was re-sent, without a quiet period: a state that reaches us after the last
        # PUBACK was taken by the broker after our PUBLISHes, so the broker acknowledges it to the daemon
        # after delivering them there; the daemon's outbox waits for each acknowledgement and sends
        # discovery before states. A re-send caused by a hostile payload would come before the next state.
        first = probe.wait_for(d.topic("state"), timeout=10, since=acked)
        state = probe.wait_for(d.topic("state"), lambda m: m.received_at > first.received_at, timeout=10)
        resent = [m for m in probe.received(f"{d.discovery_prefix}/sensor/#") if m.received_at > since]
        rss1 = psutil.Process(d.proc.pid).memory_info().rss
        # And the birth topic is live (else the above proves nothing): a real "online" re-sends it once.
        since_birth = time.monotonic()
        probe.publish(birth, b"online")
        probe.wait_for(f"{d.discovery_prefix}/sensor/dev/genre/config", timeout=10, since=since_birth)
    assert d.proc.poll() is None, d.log()
    assert not resent, f"discovery re-sent for a non-'online' birth payload: {[m.topic for m in resent]}"
    assert state_of(state.payload)["genre"] != "jazz"
    assert d.terminate() == 0 and "Traceback" not in d.log()
    print(f"hostile inbound: subscriptions {subs}; RSS {rss0 / 2**20:.1f} -> {rss1 / 2**20:.1f} MB after a 16 MB birth")


needs_systemd_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing")


@needs_systemd_analyze
def test_unit_exposure_at_most_3_with_dev_snd_reachable(tmp_path: Path) -> None:
    unit = unit_for_this_machine(tmp_path)
    proc = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    out = proc.stdout + proc.stderr
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out)
    assert match, out
    score = float(match.group(1))
    assert score <= 3.0, f"exposure {score} > 3.0:\n{out}"
    # /dev/snd: no PrivateDevices= (it would hide it), only ALSA devices allowed, audio group for the nodes.
    private_devices = next((line for line in out.splitlines() if "PrivateDevices=" in line), "")
    assert private_devices.lstrip().startswith("✗"), private_devices
    text = unit.read_text()
    assert "DevicePolicy=closed" in text and "DeviceAllow=char-alsa rw" in text and "SupplementaryGroups=audio" in text
    print(f"systemd-analyze security --offline=yes: exposure {score} (<= 3.0), /dev/snd reachable via char-alsa")
