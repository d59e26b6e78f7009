"""Bad input, table-driven: one clear line, the documented exit code, no traceback, nothing else broken.

Exit codes (daemon/cli.py): 78 configuration, 65 bad model bundle or undecodable audio,
69 audio input unavailable, 0 for input that is odd but usable (the daemon classifies it).
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import soundfile as sf

from edge.bundle import default_bundle_dir
from tests.integration.conftest import DaemonProc, daemon_command, run_cli
from tests.support.mosquitto import MosquittoBroker
from tests.support.mqtt_client import MqttProbe
from tests.support.pulse import PulseServer
from tests.support.waiting import lines_with, wait_until

OPTIONS = {
    "blues",
    "classical",
    "country",
    "disco",
    "hiphop",
    "jazz",
    "metal",
    "pop",
    "reggae",
    "rock",
    "silence",
    "uncertain",
    "not_music",
}


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    assert len(lines) == 1, f"expected one line, got {len(lines)}:\n{proc.stderr}"
    assert lines[0].startswith("genre-daemon: "), lines[0]
    return lines[0]


# -- configuration (78) -------------------------------------------------------------------------

# ruff: noqa: E501  (the tables read best one case per line)
CONFIG_CASES: list[tuple[str, str | None, str]] = [
    # (id, TOML text or None for "no such file", expected text in the line)
    ("missing file", None, "no such file"),
    ("invalid TOML", "[mqtt\nport = 1\n", "invalid TOML"),
    ("unknown key", "[mqtt]\nhots = 'x'\n", "mqtt.hots: unknown key"),
    ("unknown section", "[mqttt]\nhost = 'x'\n", "mqttt: unknown section"),
    ("wrong type", "[mqtt]\nport = '1883'\n", "mqtt.port: must be an integer, got a string '1883'"),
    ("wrong type bool", "[source]\nloop = 'yes'\n", "source.loop: must be a boolean"),
    ("negative hop", "[pipeline]\nhop_s = -1.0\n", "pipeline.hop_s: must be 0 (the model's own, model.json) or in 0.05..60 s"),
    ("hop longer than the window", "[pipeline]\nhop_s = 5.0\n", "pipeline.hop_s: must be at most the model's window (3.024 s)"),
    ("port 0", "[mqtt]\nport = 0\n", "mqtt.port: must be in 1..65535"),
    ("port 70000", "[mqtt]\nport = 70000\n", "mqtt.port: must be in 1..65535"),
    ("prefix with #", "[mqtt]\nprefix = 'genre#'\n", "mqtt.prefix: must not contain '#'"),
    ("prefix with +", "[mqtt]\nprefix = '+'\n", "mqtt.prefix: must not contain '+'"),
    ("discovery prefix with #", "[discovery]\nprefix = 'ha/#'\n", "discovery.prefix: level '#' must not contain '#'"),
    ("password file missing", "[mqtt]\nusername = 'pi'\npassword_file = '/no/such/pw'\n", "mqtt.password_file: /no/such/pw: no such file"),
    ("password file is a directory", "[mqtt]\nusername = 'pi'\npassword_file = '/tmp'\n", "mqtt.password_file: /tmp: not a regular file"),
    ("TLS CA missing", "[mqtt]\ntls = true\nca_file = '/no/ca.pem'\n", "mqtt.ca_file: /no/ca.pem: no such file"),
    ("TLS cert missing", "[mqtt]\ntls = true\ncert_file = '/no/c.pem'\n", "mqtt.cert_file: /no/c.pem: no such file"),
    ("TLS file without tls", "[mqtt]\nca_file = '/etc/hostname'\n", "mqtt.ca_file: is set but mqtt.tls is false"),
]  # fmt: skip


@pytest.mark.parametrize(("toml", "needle"), [c[1:] for c in CONFIG_CASES], ids=[c[0] for c in CONFIG_CASES])
def test_bad_config_exits_78_with_one_line(tmp_path: Path, toml: str | None, needle: str) -> None:
    cfg = tmp_path / "config.toml"
    if toml is not None:
        cfg.write_text(toml)
    t0 = time.monotonic()
    proc = run_cli(["--config", str(cfg), "--check-config"])
    took = time.monotonic() - t0
    assert proc.returncode == 78, f"exit {proc.returncode} after {took:.2f} s: {proc.stderr}"
    line = one_line_error(proc)
    assert str(cfg) in line and needle in line, line


def test_password_file_with_invalid_utf8_exits_78(tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_bytes(b"\xff\xfe\x00secret")
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"[mqtt]\nusername = 'pi'\npassword_file = '{pw}'\n")
    proc = run_cli(["--config", str(cfg), "--check-config"])
    assert proc.returncode == 78, proc.stderr
    assert "mqtt.password_file" in one_line_error(proc) and "secret" not in proc.stderr


def test_unreadable_password_file_exits_78(tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text("secret-pw\n")
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"[mqtt]\nusername = 'pi'\npassword_file = '{pw}'\n")
    cmd = [*daemon_command(), "--config", str(cfg), "--check-config"]
    if os.geteuid() == 0:
        # Root reads anything: give the file to nobody and drop root's permission-override capabilities.
        if shutil.which("setpriv") is None:
            pytest.skip("setpriv missing")
        os.chown(pw, 65534, 65534)
        drop = "-dac_override,-dac_read_search"
        cmd = ["setpriv", f"--inh-caps={drop}", f"--bounding-set={drop}", *cmd]
    pw.chmod(0o600 if os.geteuid() == 0 else 0)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 78, proc.stderr
    line = one_line_error(proc)
    assert f"mqtt.password_file: {pw}: not readable" in line, line
    assert "secret-pw" not in proc.stderr


# -- model bundle (65) --------------------------------------------------------------------------


def _edit_spec(bundle: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    doc = json.loads((bundle / "model.json").read_text())
    edit(doc["feature_spec"])
    (bundle / "model.json").write_text(json.dumps(doc))


def _truncate(bundle: Path) -> None:
    data = (bundle / "model.tflite").read_bytes()
    (bundle / "model.tflite").write_bytes(data[: len(data) // 2])


def _empty(bundle: Path) -> None:
    for f in bundle.iterdir():
        f.unlink()


# The shipped model's output count (10 genres + the reject class today); the cases derive from it.
SHIPPED_LABELS = len(json.loads((default_bundle_dir() / "model.json").read_text())["feature_spec"]["labels"])

MODEL_CASES: list[tuple[str, Callable[[Path], object], str]] = [
    ("empty bundle dir", _empty, "model.json: missing"),
    ("no model.tflite", lambda b: os.remove(b / "model.tflite"), "model.tflite: missing"),
    ("truncated tflite", _truncate, "not a loadable TFLite model"),
    ("shape mismatch", lambda b: _edit_spec(b, lambda s: s.update(window_s=5.0)), "does not fit the spec's"),
    ("labels mismatch", lambda b: _edit_spec(b, lambda s: s.update(labels=s["labels"][:-1])), f"model has {SHIPPED_LABELS} outputs but the spec lists {SHIPPED_LABELS - 1} labels"),
    ("spec from the future", lambda b: _edit_spec(b, lambda s: s.update(spec_version=99)), "spec_version 99 is newer"),
    ("spec not JSON", lambda b: (b / "model.json").write_text("{nope"), "invalid JSON"),
]  # fmt: skip


@pytest.mark.parametrize(("damage", "needle"), [c[1:] for c in MODEL_CASES], ids=[c[0] for c in MODEL_CASES])
def test_bad_model_bundle_exits_65_with_one_line(
    tmp_path: Path, shipped_bundle: Path, damage: Callable[[Path], object], needle: str
) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(shipped_bundle, bundle)
    damage(bundle)
    proc = run_cli(["--check-config", "--model", str(bundle)])
    assert proc.returncode == 65, proc.stderr
    assert needle in one_line_error(proc)


def test_missing_model_directory_is_a_config_error(tmp_path: Path) -> None:
    proc = run_cli(["--check-config", "--model", str(tmp_path / "absent")])
    assert proc.returncode == 78, proc.stderr
    assert "--model (model.path)" in one_line_error(proc) and "no such directory" in proc.stderr


# -- audio --------------------------------------------------------------------------------------


def _wav_header_zero_channels(path: Path) -> Path:
    fmt = struct.pack("<HHIIHH", 1, 0, 22050, 0, 0, 16)  # PCM, 0 channels
    data = b"\0" * 4410
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def _bytes(name: str, data: bytes) -> Callable[[Path], Path]:
    def make(d: Path) -> Path:
        (d / name).write_bytes(data)
        return d / name

    return make


def _no_frames(d: Path) -> Path:
    sf.write(str(d / "n.wav"), np.zeros((0, 2)), 44100)
    return d / "n.wav"


UNDECODABLE: list[tuple[str, Callable[[Path], Path], str]] = [
    ("corrupt", _bytes("c.wav", b"RIFF\x10\0\0\0WAVEjunk" * 40), "cannot decode audio"),
    ("zero bytes", _bytes("e.wav", b""), "cannot decode audio"),
    ("header, no frames", _no_frames, "audio is empty"),
    ("zero channels", lambda d: _wav_header_zero_channels(d / "z.wav"), "cannot decode audio"),
]  # fmt: skip


@pytest.mark.parametrize(("make", "needle"), [c[1:] for c in UNDECODABLE], ids=[c[0] for c in UNDECODABLE])
def test_undecodable_audio_exits_65_with_one_line(
    tmp_path: Path, tiny_bundle: Path, make: Callable[[Path], Path], needle: str
) -> None:
    path = make(tmp_path)
    proc = run_cli(["--model", str(tiny_bundle), "--source", f"file:{path}", "--mqtt-port", "1"])
    assert proc.returncode == 65, proc.stderr
    line = one_line_error(proc)
    assert path.name in line and needle in line, line


def _music(rate: int, seconds: float = 8.0) -> npt.NDArray[np.float32]:
    from edge.audio import load_audio
    from tests.integration.conftest import GTZAN_CLIP

    if not GTZAN_CLIP.is_file():
        pytest.skip("GTZAN clip missing")
    return load_audio(GTZAN_CLIP, rate)[: round(seconds * rate)]


def _usable(kind: str, d: Path) -> Path:
    path = d / f"{kind.replace('/', '_').replace(' ', '_')}.wav"
    if kind == "8 kHz":
        sf.write(str(path), _music(8000), 8000, subtype="PCM_16")
    elif kind == "96 kHz":
        x = _music(96000)
        sf.write(str(path), np.stack([x, x], axis=1), 96000, subtype="PCM_24")
    elif kind == "clipping":
        x = np.clip(_music(22050) * 30.0, -1.0, 1.0)  # +30 dB into a hard clip
        sf.write(str(path), x, 22050, subtype="PCM_16")
    else:  # NaN/Inf samples in a float file
        x = _music(22050).copy()
        x[22050:22060] = np.nan
        x[44100:44110] = np.inf
        x[66150:66160] = -np.inf
        sf.write(str(path), x, 22050, subtype="FLOAT")
    return path


@pytest.mark.parametrize("kind", ["8 kHz", "96 kHz", "clipping", "NaN/Inf samples"])
def test_odd_but_usable_audio_is_classified(
    kind: str,
    tmp_path: Path,
    shipped_bundle: Path,
    broker: MosquittoBroker,
    mqtt_probe: Callable[..., MqttProbe],
    topic_prefix: str,
) -> None:
    path = _usable(kind, tmp_path)
    topic_prefix = topic_prefix.replace("/", "_")
    probe = mqtt_probe(f"{topic_prefix}/#")
    t0 = time.monotonic()
    proc = run_cli(
        ["--model", str(shipped_bundle), "--source", f"file:{path}", "--speed", "0", "--hop", "1",
         "--mqtt-host", broker.host, "--mqtt-port", str(broker.port), "--prefix", topic_prefix, "--device-id", "odd"]
    )  # fmt: skip
    took = time.monotonic() - t0
    assert proc.returncode == 0, f"{kind}: exit {proc.returncode} after {took:.1f} s\n{proc.stderr}"
    assert "Traceback" not in proc.stderr and "Warning" not in proc.stderr, proc.stderr
    # The offline message is published after the last state on one connection, same QoS: once it is here, every
    # state is too (the run ends before the probe may have read them all).
    probe.wait_for(f"{topic_prefix}/odd/availability", lambda m: m.payload == b"offline", timeout=10)
    states = [json.loads(m.payload, parse_constant=_reject) for m in probe.received(f"{topic_prefix}/odd/state")]
    last = states[-1]
    # 8 s at a 1 s hop = 6 windows; the state carries the daemon's own count, as the outbox may merge states.
    assert last["counters"]["windows"] == 6, f"{kind}: {len(states)} states, last {last}"
    assert last["genre"] in OPTIONS and 0.0 <= last["confidence"] <= 1.0 and -120.0 <= last["rms_db"] <= 0.5, last
    if kind == "clipping":
        assert last["rms_db"] > -6.0, last
    if kind != "NaN/Inf samples":
        assert all(s["genre"] != "silence" for s in states), [s["genre"] for s in states]
    print(f"{kind}: exit 0 in {took:.1f} s, {len(states)} states, last {last['genre']} {last['confidence']:.2f}")


def _reject(token: str) -> Any:
    raise AssertionError(f"state JSON carries {token}")


def test_nan_and_inf_in_a_buffer_do_not_fake_silence(shipped_bundle: Path) -> None:
    from daemon.cli import lite_runtime
    from edge.bundle import load_bundle
    from edge.decide.classifier import Classifier

    bundle = load_bundle(shipped_bundle, 1, lite_runtime(""))
    music = _music(22050, 10.0)
    step = 2205
    clf = Classifier(bundle.spec, bundle.model, bundle.decision, 0.5)
    verdicts: list[str] = []
    for i in range(0, music.size, step):
        chunk = music[i : i + step].copy()
        if i == 4 * 22050:
            chunk[::7], chunk[::11], chunk[::13] = np.nan, np.inf, -np.inf
        result = clf.push(chunk)
        if result is not None:
            assert np.isfinite(result.rms_dbfs) and np.isfinite(result.confidence), result
            verdicts.append(result.candidate)
    assert "silence" not in verdicts, f"one bad buffer reported as silence: {verdicts}"
    assert clf.counters.nonfinite_chunks == 1


def test_device_that_does_not_exist_exits_69_listing_the_available_ones(
    pulse_factory: Callable[[], PulseServer], tiny_bundle: Path
) -> None:
    server = pulse_factory()
    proc = run_cli(
        ["--model", str(tiny_bundle), "--source", "mic", "--device", "no-such-mic", "--mqtt-port", "1"], env=server.env
    )
    assert proc.returncode == 69, proc.stderr
    line = one_line_error(proc)
    assert "no input device matching 'no-such-mic'; available inputs:" in line and "'pulse'" in line, line


# -- MQTT -----------------------------------------------------------------------------------------


def test_wrong_password_clear_error_retries_with_backoff_and_never_logs_it(
    tmp_path: Path, daemon: Callable[..., DaemonProc], broker_factory: Callable[..., MosquittoBroker], music_file: Path
) -> None:
    secret = "Wr0ng-Pa55-word"
    b = broker_factory(users={"pi": "the-right-one"}, allow_anonymous=False)
    pw = tmp_path / "pw"
    pw.write_text(secret + "\n")
    d = daemon(
        music_file,
        target=b,
        extra=["--speed", "20", "--loop", "--log-level", "debug"],
        base_mqtt="reconnect_min_s = 1\nreconnect_max_s = 8\nkeepalive_s = 10\n",
        mqtt=f"username = 'pi'\npassword_file = '{pw}'\n",
    )
    # The 9 s window starts at the first attempt, not at process start: start-up time is the machine's, the
    # backoff schedule (attempts at 0, 1, 3, 7 s, then 15 s) is the daemon's.
    refused = "disconnected, not authorised"
    wait_until(lambda: lines_with(b.log_text(), refused), timeout=30, what="a first refused attempt", log=d.log)
    time.sleep(9.0)
    assert d.proc.poll() is None, d.log()
    assert d.terminate() == 0
    log = d.log()
    attempts = lines_with(b.log_text(), refused)
    refusals = [line for line in log.splitlines() if "refused" in line]
    assert refusals and "Not authorized" in refusals[0], f"no clear auth error in:\n{log}"
    assert 3 <= len(attempts) <= 6, f"{len(attempts)} attempts in 9 s (backoff 1, 2, 4, 8 s expected):\n" + "\n".join(
        attempts
    )
    assert secret not in log and secret not in b.log_text()
    print(f"wrong password: {len(attempts)} attempts in 9 s, error: {refusals[0].split(': ', 1)[-1]}")


def test_tls_with_the_wrong_ca_fails_clearly(
    daemon: Callable[..., DaemonProc], broker_factory: Callable[..., MosquittoBroker], music_file: Path
) -> None:
    b = broker_factory(tls=True)
    assert b.tls is not None and b.tls_port is not None
    d = daemon(
        music_file,
        target=b,
        extra=["--speed", "20", "--loop", "--mqtt-port", str(b.tls_port)],
        mqtt=f"tls = true\nca_file = '{b.tls.other_ca_cert}'\n",
    )
    # "Once" needs repeated failures: wait for three handshakes the broker saw fail (backoff 0.5-2 s),
    # however long the daemon took to start, rather than a fixed time.
    wait_until(
        lambda: len(lines_with(b.log_text(), "alert unknown ca")) >= 3,
        timeout=30,
        what="three failed TLS handshakes at the broker",
        log=d.log,
    )
    assert d.proc.poll() is None, d.log()
    assert d.terminate() == 0
    errors = [line for line in d.log().splitlines() if "certificate verify failed" in line]
    assert len(errors) == 1, d.log()
    print(f"wrong CA: {errors[0].split(': ', 1)[-1]}")
