"""Daemon-specific fixtures: the real ``genre-daemon`` as a subprocess, with a config per test.

Example::

    def test_x(daemon, broker, mqtt_probe, music_file):
        probe = mqtt_probe("g_x/#")
        d = daemon(music_file, prefix="g_x", extra=["--speed", "10", "--loop"])
        probe.wait_for("g_x/dev/availability", lambda m: m.text == "online", timeout=10)
        assert d.terminate() == 0
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from edge.audio import load_audio
from tests.support.daemon_proc import daemon_command
from tests.support.mosquitto import MosquittoBroker
from tests.support.mqtt_client import MqttProbe
from tests.support.procs import die_with_parent

__all__ = ["DaemonProc", "daemon_command", "run_cli", "state_of"]  # daemon_command: tests/support
GTZAN_CLIP = Path(__file__).resolve().parents[3] / "shared" / "gtzan" / "rock" / "rock.00000.ogg"


@dataclass
class DaemonProc:
    proc: subprocess.Popen[str]
    log_path: Path
    topic_root: str  # "<prefix>/<device_id>"
    discovery_prefix: str
    started: float = field(default_factory=time.monotonic)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def topic(self, leaf: str) -> str:
        return f"{self.topic_root}/{leaf}"

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
            raise AssertionError(f"genre-daemon still running after {timeout} s; log:\n{self.log()}") from None

    def terminate(self, timeout: float = 5.0) -> int:
        self.signal(signal.SIGTERM)
        return self.wait(timeout)

    def finish(self, probe: MqttProbe, timeout: float) -> None:
        """Wait for a clean exit, then for ``offline`` on ``probe`` (which must subscribe to availability).

        The daemon publishes ``offline`` after its last state, on one connection and at one QoS, so the broker
        delivers it last: once it is in, so is every state. Without this a test reading ``probe.received`` right
        after exit races the broker and sometimes misses the final messages.
        """
        assert self.wait(timeout) == 0, self.log()
        probe.wait_for(self.topic("availability"), lambda m: m.payload == b"offline", timeout=10)


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", text)[-60:]


@pytest.fixture
def music_file() -> Path:
    """30 s of real music (GTZAN rock.00000, 22.05 kHz mono ogg)."""
    if not GTZAN_CLIP.is_file():
        pytest.skip(f"GTZAN clip not found at {GTZAN_CLIP}")
    return GTZAN_CLIP


@pytest.fixture
def silence_then_music(tmp_path: Path, music_file: Path) -> Path:
    """6 s of digital silence then 12 s of the music clip, 44.1 kHz stereo wav (exercises resampling)."""
    rate = 44100
    music = load_audio(music_file, rate)[: 12 * rate]
    audio = np.concatenate([np.zeros(6 * rate, dtype=np.float32), music])
    path = tmp_path / "silence_then_music.wav"
    sf.write(str(path), np.stack([audio, audio], axis=1), rate, subtype="PCM_16")
    return path


@pytest.fixture
def daemon(
    tmp_path: Path, tiny_bundle: Path, broker: MosquittoBroker, request: pytest.FixtureRequest
) -> Iterator[Callable[..., DaemonProc]]:
    """Start ``genre-daemon`` on a file source (or ``"mic"``) against a broker; all are stopped afterwards.

    ``daemon(audio, prefix=None, device_id="dev", extra=[...], mqtt="lines for [mqtt]",
    discovery="lines for [discovery]", config="more [sections]", target=broker, env={...})``;
    ``prefix`` defaults to one unique to the test, and discovery goes under ``<prefix>_ha`` so
    concurrent tests never see each other's retained messages (``discovery_prefix`` to choose it, e.g.
    ``homeassistant`` for a real Home Assistant). ``base_mqtt`` replaces the fast
    test reconnect/keepalive lines ("" = the daemon's shipped defaults); ``stderr`` redirects the
    daemon's stderr (e.g. an open ``/dev/full``) instead of into the log file.
    """
    made: list[DaemonProc] = []
    unique = safe_name(request.node.name) + f"_{os.getpid()}"

    def start(
        audio: Path | str,
        *,
        prefix: str | None = None,
        device_id: str = "dev",
        extra: list[str] | None = None,
        mqtt: str = "",
        discovery: str = "",
        config: str = "",
        target: MosquittoBroker | None = None,
        env: dict[str, str] | None = None,
        model: Path | None = None,
        base_mqtt: str = "reconnect_min_s = 0.5\nreconnect_max_s = 2\nkeepalive_s = 10\n",
        stderr: Any = None,
        discovery_prefix: str | None = None,
    ) -> DaemonProc:
        b = target or broker
        pfx = prefix or f"g_{unique}"
        disc = discovery_prefix or f"{pfx}_ha"
        cfg = tmp_path / f"daemon-{len(made)}.toml"
        cfg.write_text("[mqtt]\n" + base_mqtt + mqtt + f"[discovery]\nprefix = '{disc}'\n" + discovery + config)
        cmd = [
            *daemon_command(), "--config", str(cfg), "--source", "mic" if audio == "mic" else f"file:{audio}",
            "--model", str(model or tiny_bundle), "--mqtt-host", b.host, "--mqtt-port", str(b.port),
            "--prefix", pfx, "--device-id", device_id, *(extra or []),
        ]  # fmt: skip
        log_path = tmp_path / f"daemon-{len(made)}.log"
        full_env = {
            k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "JOURNAL_STREAM")
        }
        full_env.update(env or {})
        with log_path.open("w") as log:
            proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT if stderr is None else stderr,
                text=True,
                env=full_env,
                preexec_fn=die_with_parent(),
            )
        d = DaemonProc(proc, log_path, f"{pfx}/{device_id}", disc)
        made.append(d)
        return d

    yield start
    for d in made:
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait(timeout=5)


def run_cli(
    args: list[str], env: dict[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """Run ``genre-daemon ARGS`` to completion (for exit-code tests)."""
    return subprocess.run(
        [*daemon_command(), *args], capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )


def state_of(payload: bytes) -> dict[str, Any]:
    import json

    doc: dict[str, Any] = json.loads(payload)
    return doc
