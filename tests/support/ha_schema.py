"""Validate Home Assistant MQTT discovery payloads with Home Assistant's own schema.

The check runs ``homeassistant.components.mqtt.sensor.DISCOVERY_SCHEMA`` from
``homeassistant==2024.3.*``. That release pins paho-mqtt 1.x, which would
break the project's paho 2.x, so it lives in a separate venv outside the repo
(default ``~/.cache/genre-pi/ha-venv-2024.3``; override with the environment
variable ``GENRE_PI_HA_VENV``). The first use installs it (~3-4 min); parallel
test processes serialize on ``<venv>.lock`` and a stamp file marks a complete
install, so an interrupted install is redone rather than half-used.

Before validation the payload goes through the same preprocessing HA's
discovery applies (abbreviation expansion such as ``stat_t`` ->
``state_topic``, ``dev`` keys, ``~`` base topic), so abbreviated payloads
are judged exactly as HA would.

HA's schema has ``extra=vol.REMOVE_EXTRA``: unknown keys are dropped without
an error. The validator reports them and, by default, fails on them (a typo
would otherwise pass). Beware: 2024.3's MQTT sensor has **no** ``options``
key, so an enum sensor's ``options`` list is ignored by that release.

Example::

    validator = HaSchemaValidator()         # installs on first use, then ~1.5 s to start
    config = validator.validate_sensor_discovery({
        "name": "Genre", "unique_id": "genre_pi_genre", "state_topic": "genre-pi/kitchen/genre",
        "device_class": "enum", "options": ["blues", "jazz"],
    }, allow_dropped={"options"})           # returns HA's normalized config (defaults filled in)
    validator.close()

    # or the one-shot module function (shares one validator process per test process):
    validate_sensor_discovery(payload)      # raises AssertionError with HA's message if invalid
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pwd
import select
import shutil
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = [
    "HA_REQUIREMENT",
    "HaSchemaUnavailable",
    "HaSchemaValidator",
    "default_venv_path",
    "ensure_ha_venv",
    "validate_sensor_discovery",
]

HA_REQUIREMENT = "homeassistant==2024.3.*"
_STAMP_NAME = ".genre-pi-install-complete"
# Seconds. A cold install measured ~3.5 min; the lock wait covers a sibling
# process doing exactly that.
INSTALL_TIMEOUT_S = 20 * 60.0
LOCK_TIMEOUT_S = INSTALL_TIMEOUT_S + 60.0
# HA's import chain is heavy (~1-2 s); 60 s absorbs a cold page cache on CI.
STARTUP_TIMEOUT_S = 60.0
CALL_TIMEOUT_S = 30.0


class HaSchemaUnavailable(RuntimeError):
    """The HA venv could not be installed or started; tests should skip with ``str(exc)``."""


def default_venv_path() -> Path:
    """``$GENRE_PI_HA_VENV``, else ``$XDG_CACHE_HOME/genre-pi/ha-venv-2024.3`` (``~/.cache`` default).

    The home directory comes from the password database, not ``$HOME``:
    audio fixtures may point ``$HOME`` at a temp dir, and the cache must not move.
    """
    override = os.environ.get("GENRE_PI_HA_VENV")
    if override:
        return Path(override)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path(pwd.getpwuid(os.getuid()).pw_dir) / ".cache")
    return Path(cache) / "genre-pi" / "ha-venv-2024.3"


def _venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _stamp_ok(venv: Path) -> bool:
    stamp = venv / _STAMP_NAME
    return stamp.is_file() and stamp.read_text().splitlines()[:1] == [HA_REQUIREMENT] and _venv_python(venv).exists()


def ensure_ha_venv(venv: Path | None = None, *, log: Path | None = None) -> Path:
    """Return the path of a venv with ``homeassistant==2024.3.*``, installing it if needed.

    Safe to call from many processes at once (``fcntl.flock`` on
    ``<venv>.lock``; losers wait up to ``LOCK_TIMEOUT_S`` seconds). A venv
    without the stamp file is deleted and reinstalled. pip output goes to
    ``log`` (default ``<venv>.install.log``). Raises
    :class:`HaSchemaUnavailable` with the pip log tail if the install fails.
    """
    venv = venv or default_venv_path()
    if _stamp_ok(venv):
        return venv
    venv.parent.mkdir(parents=True, exist_ok=True)
    log = log or venv.with_name(venv.name + ".install.log")
    lock_path = venv.with_name(venv.name + ".lock")
    with lock_path.open("a") as lock_file:
        deadline = time.monotonic() + LOCK_TIMEOUT_S
        while True:
            try:
                fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise HaSchemaUnavailable(f"timed out after {LOCK_TIMEOUT_S}s waiting for {lock_path}") from None
                time.sleep(1.0)
        try:
            if _stamp_ok(venv):  # a sibling process finished while we waited
                return venv
            _install(venv, log)
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)
    return venv


def _install(venv: Path, log: Path) -> None:
    if venv.exists():
        shutil.rmtree(venv)
    t0 = time.monotonic()
    deadline = t0 + INSTALL_TIMEOUT_S
    py = str(_venv_python(venv))
    wheel_dir = venv / "wheel"
    # The base interpreter, not this venv's, so nothing of the test venv leaks in.
    base_python = getattr(sys, "_base_executable", sys.executable)
    with log.open("w") as out:

        def run(cmd: list[str]) -> None:
            out.write(f"$ {' '.join(cmd)}\n")
            out.flush()
            try:
                rc = subprocess.run(
                    cmd,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    timeout=max(1.0, deadline - time.monotonic()),
                    check=False,
                ).returncode
            except subprocess.TimeoutExpired:
                rc = -1
            if rc != 0:
                out.flush()
                lines = log.read_text(errors="replace").splitlines()
                tail = [ln for ln in lines if "is ignored" not in ln][-25:]
                raise HaSchemaUnavailable(
                    f"installing {HA_REQUIREMENT} into {venv} failed (rc={rc}); log {log}:\n" + "\n".join(tail)
                )

        run([base_python, "-m", "venv", str(venv)])
        run([py, "-m", "pip", "download", "-q", "--no-deps", "-d", str(wheel_dir), HA_REQUIREMENT])
        wheels = sorted(wheel_dir.glob("homeassistant-*.whl"))
        if not wheels:
            raise HaSchemaUnavailable(f"pip download of {HA_REQUIREMENT} produced no wheel in {wheel_dir}")
        # HA ships its own pins (package_constraints.txt) in the wheel. Without
        # them pip backtracks through dozens of bluetooth-data-tools sdists for
        # 5+ minutes; with them the install is one deterministic pass.
        with zipfile.ZipFile(wheels[-1]) as zf:
            constraints = wheel_dir / "package_constraints.txt"
            constraints.write_bytes(zf.read("homeassistant/package_constraints.txt"))
        # paho-mqtt (1.6.1 per the constraints) because the mqtt integration imports it.
        run([py, "-m", "pip", "install", "-q", str(wheels[-1]), "paho-mqtt", "-c", str(constraints)])
    # Prove the schema imports before declaring the venv complete.
    probe = subprocess.run(
        [py, "-c", _VALIDATOR_SCRIPT, "--self-test"],
        capture_output=True,
        text=True,
        timeout=STARTUP_TIMEOUT_S,
        check=False,
    )
    if probe.returncode != 0:
        raise HaSchemaUnavailable(f"HA venv at {venv} installed but the schema does not load:\n{probe.stderr[-3000:]}")
    (venv / _STAMP_NAME).write_text(f"{HA_REQUIREMENT}\ninstalled in {time.monotonic() - t0:.0f} s\n")


# Runs inside the HA venv. One JSON request per stdin line, one JSON reply per
# stdout line, so a single slow HA import serves a whole test session.
_VALIDATOR_SCRIPT = r'''
import json, logging, sys
logging.disable(logging.CRITICAL)
import voluptuous as vol
from voluptuous.humanize import humanize_error
from homeassistant.components.mqtt import sensor as mqtt_sensor
from homeassistant.components.mqtt.abbreviations import ABBREVIATIONS, DEVICE_ABBREVIATIONS
from homeassistant.helpers.json import JSONEncoder

def expand(payload):
    """Mirror of homeassistant/components/mqtt/discovery.py (2024.3) preprocessing."""
    payload = dict(payload)
    for key in list(payload):
        payload[ABBREVIATIONS.get(key, key)] = payload.pop(key)
    if isinstance(payload.get("device"), dict):
        device = dict(payload["device"])
        for key in list(device):
            device[DEVICE_ABBREVIATIONS.get(key, key)] = device.pop(key)
        payload["device"] = device
    if "availability" in payload:
        avail = payload["availability"]
        items = avail if isinstance(avail, list) else [avail]
        new = []
        for conf in items:
            if isinstance(conf, dict):
                conf = {ABBREVIATIONS.get(k, k): v for k, v in conf.items()}
            new.append(conf)
        payload["availability"] = new if isinstance(avail, list) else new[0]
    if "~" in payload:
        base = payload.pop("~")
        for key, value in list(payload.items()):
            if isinstance(value, str) and value and key.endswith("topic"):
                if value[0] == "~":
                    payload[key] = f"{base}{value[1:]}"
                if value[-1] == "~":
                    payload[key] = f"{value[:-1]}{base}"
        avail = payload.get("availability")
        if avail:
            for conf in (avail if isinstance(avail, list) else [avail]):
                if isinstance(conf, dict) and isinstance(conf.get("topic"), str) and conf["topic"]:
                    t = conf["topic"]
                    if t[0] == "~":
                        conf["topic"] = f"{base}{t[1:]}"
                    if t[-1] == "~":
                        conf["topic"] = f"{t[:-1]}{base}"
    return payload

def validate(payload):
    if not isinstance(payload, dict):
        return {"ok": False, "error": f"payload must be a JSON object, got {type(payload).__name__}"}
    expanded = expand(payload)
    try:
        config = mqtt_sensor.DISCOVERY_SCHEMA(expanded)
    except vol.Invalid as exc:
        # humanize_error adds the offending value ("Got 'nope'") to HA's message.
        return {"ok": False, "error": humanize_error(expanded, exc)}
    # DISCOVERY_SCHEMA has extra=REMOVE_EXTRA: unknown keys (typos, or options this
    # HA release does not support) vanish silently, so report them.
    dropped = sorted(k for k in expanded if k not in config)
    return {"ok": True, "dropped": dropped,
            "config": json.loads(json.dumps(config, cls=JSONEncoder, default=str))}

if "--self-test" in sys.argv:
    good = {"name": "g", "state_topic": "a/b", "device_class": "enum"}
    assert validate(good)["ok"], validate(good)
    assert not validate({"state_topic": "a/b", "device_class": "nope"})["ok"]
    sys.exit(0)

print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    try:
        reply = validate(json.loads(line))
    except Exception as exc:  # a bug here must not kill the session's validator
        reply = {"ok": False, "error": f"validator crashed: {type(exc).__name__}: {exc}", "crash": True}
    print(json.dumps(reply), flush=True)
'''


class HaSchemaValidator:
    """A long-lived validator process in the HA venv; thread-safe; ``close()`` when done.

    Construction installs the venv if needed (see :func:`ensure_ha_venv`) and
    waits for the HA import (~1.5 s warm). Each call then costs ~1 ms.
    Raises :class:`HaSchemaUnavailable` if the venv cannot be made.
    """

    def __init__(self, venv: Path | None = None) -> None:
        self.venv = ensure_ha_venv(venv)
        self._lock = threading.Lock()
        t0 = time.monotonic()
        self._proc = subprocess.Popen(
            [str(_venv_python(self.venv)), "-c", _VALIDATOR_SCRIPT],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        hello = self._read_reply(STARTUP_TIMEOUT_S)
        if not hello.get("ready"):
            self.close()
            raise HaSchemaUnavailable(f"HA validator did not start: {hello}")
        self.startup_seconds = time.monotonic() - t0

    def _read_reply(self, timeout: float) -> dict[str, Any]:
        assert self._proc.stdout is not None
        ready, _, _ = select.select([self._proc.stdout], [], [], timeout)
        line = self._proc.stdout.readline() if ready else ""
        if not line:
            stderr = ""
            if self._proc.poll() is not None and self._proc.stderr is not None:
                stderr = self._proc.stderr.read()[-3000:]
            raise HaSchemaUnavailable(
                f"HA validator gave no reply within {timeout}s (exit={self._proc.poll()}): {stderr}"
            )
        reply: dict[str, Any] = json.loads(line)
        return reply

    def check_sensor_discovery(self, payload: Any) -> tuple[bool, str, dict[str, Any] | None, list[str]]:
        """``(ok, error_text, normalized_config, dropped_keys)``; never raises for an invalid payload.

        ``dropped_keys`` are (expanded) keys HA's schema silently removed.
        """
        with self._lock:
            assert self._proc.stdin is not None
            self._proc.stdin.write(json.dumps(payload) + "\n")
            self._proc.stdin.flush()
            reply = self._read_reply(CALL_TIMEOUT_S)
        return bool(reply["ok"]), str(reply.get("error", "")), reply.get("config"), list(reply.get("dropped", []))

    def validate_sensor_discovery(self, payload: Any, *, allow_dropped: Iterable[str] = ()) -> dict[str, Any]:
        """Validate an MQTT *sensor* discovery payload (dict, abbreviations allowed) as HA 2024.3 does.

        Returns HA's normalized config (abbreviations expanded, defaults added).
        Raises ``AssertionError`` with HA's error text if HA would reject it,
        and also if HA would silently *ignore* keys (its schema drops unknown
        keys, so a typo like ``"stat_topic"`` is otherwise invisible) unless
        they are listed in ``allow_dropped`` (expanded names). Note: 2024.3's
        MQTT sensor has no ``options`` key (newer HA releases do), so a payload
        that sends ``options`` for forward compatibility needs
        ``allow_dropped={"options"}``.

        Example::

            cfg = ha_schema.validate_sensor_discovery(payload, allow_dropped={"options"})
            assert cfg["device_class"] == "enum"
        """
        ok, error, config, dropped = self.check_sensor_discovery(payload)
        if not ok:
            raise AssertionError(f"Home Assistant rejects the sensor discovery payload: {error}\npayload={payload}")
        unexpected = sorted(set(dropped) - set(allow_dropped))
        if unexpected:
            raise AssertionError(
                f"Home Assistant 2024.3 would silently ignore keys {unexpected} of the sensor discovery payload"
                f" (allow with allow_dropped=...)\npayload={payload}"
            )
        assert config is not None
        return config

    def __call__(self, payload: Any, *, allow_dropped: Iterable[str] = ()) -> dict[str, Any]:
        """Same as :meth:`validate_sensor_discovery`."""
        return self.validate_sensor_discovery(payload, allow_dropped=allow_dropped)

    def close(self) -> None:
        """Stop the validator process (idempotent)."""
        proc = self._proc
        if proc.poll() is None:
            with contextlib.suppress(OSError):
                assert proc.stdin is not None
                proc.stdin.close()
            # Stateless, so no need to sit through HA's ~1 s interpreter shutdown.
            proc.kill()
            proc.wait(timeout=5)
        for stream in (proc.stdout, proc.stderr, proc.stdin):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    def __enter__(self) -> HaSchemaValidator:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


_shared: HaSchemaValidator | None = None
_shared_lock = threading.Lock()


def validate_sensor_discovery(payload: dict[str, Any], *, allow_dropped: Iterable[str] = ()) -> None:
    """Raise ``AssertionError`` (with HA's error text) if HA 2024.3 would reject ``payload``.

    Uses one :class:`HaSchemaValidator` per process, stopped at interpreter
    exit. Prefer the ``ha_schema`` pytest fixture in tests.
    """
    global _shared
    with _shared_lock:
        if _shared is None:
            import atexit

            _shared = HaSchemaValidator()
            atexit.register(_shared.close)
        validator = _shared
    validator.validate_sensor_discovery(payload, allow_dropped=allow_dropped)
