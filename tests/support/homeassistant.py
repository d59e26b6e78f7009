"""A real, headless Home Assistant core for the tests: own venv, own config dir, HTTP on 127.0.0.1 only.

Before the first start the owner user and a long-lived access token are made by Home Assistant's own
auth manager (a small script run in its venv against the config dir), and onboarding is marked done;
MQTT is then set up the way a user does it, through the config flow (REST
``/api/config/config_entries/flow``). The recorder writes the usual ``home-assistant_v2.db``, which
:meth:`HomeAssistant.recorder_rows` reads with sqlite3.

Example::

    ha = HomeAssistant(tmp_path / "ha", venv=ensure_ha_venv()).start()
    ha.setup_mqtt(broker.host, broker.port)
    state = ha.wait_state("sensor.genre_pi_kitchen_genre", lambda s: s["state"] == "jazz", timeout=20)
    ha.restart()
    ha.stop()

A whole house for a test module (mosquitto, Home Assistant with MQTT set up, a probe on the broker)::

    with running_house(work, ha_venv, extra_config=HA_CONFIG, blueprints=BLUEPRINTS) as house:
        house.ha.wait_state(...)
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import pytest

from tests.support.mosquitto import MosquittoBroker, free_port, mosquitto_available
from tests.support.mqtt_client import MqttProbe
from tests.support.procs import ServiceProcess
from tests.support.services import unavailable

__all__ = ["HaError", "HomeAssistant", "House", "running_house"]

START_TIMEOUT_S = 120.0  # a cold start with a cold page cache on a loaded 2-core box
STOP_TIMEOUT_S = 30.0
State = dict[str, Any]

# Run inside Home Assistant's venv: its own AuthManager creates the owner and a long-lived token, and
# the final-write event flushes the delayed stores, exactly as on a normal shutdown.
_AUTH_SCRIPT = """
import asyncio, datetime, os, sys
from homeassistant.auth import auth_manager_from_config
from homeassistant.auth.models import TOKEN_TYPE_LONG_LIVED_ACCESS_TOKEN
from homeassistant.const import EVENT_HOMEASSISTANT_FINAL_WRITE
from homeassistant.core import HomeAssistant

async def main(config_dir):
    hass = HomeAssistant(config_dir)
    hass.auth = await auth_manager_from_config(hass, [{"type": "homeassistant"}], [])
    provider = hass.auth.auth_providers[0]
    await provider.async_initialize()
    provider.data.add_auth("owner", "genre-pi-test-password")
    await provider.data.async_save()
    user = await hass.auth.async_create_user("Owner", group_ids=["system-admin"])
    credentials = await provider.async_get_or_create_credentials({"username": "owner"})
    await hass.auth.async_link_user(user, credentials)
    refresh = await hass.auth.async_create_refresh_token(
        user, client_name="genre-pi tests", token_type=TOKEN_TYPE_LONG_LIVED_ACCESS_TOKEN,
        access_token_expiration=datetime.timedelta(days=3650),
    )
    token = hass.auth.async_create_access_token(refresh)
    hass.bus.async_fire(EVENT_HOMEASSISTANT_FINAL_WRITE)
    await hass.async_block_till_done()
    # The token counts once the auth store on disk holds it (HA writes it atomically in its executor), not
    # after a fixed pause.
    path = os.path.join(config_dir, ".storage", "auth")
    for _ in range(1200):
        if os.path.exists(path) and refresh.id in open(path).read():
            break
        await asyncio.sleep(0.05)
    else:
        sys.exit(f"{path} does not hold the new refresh token after 60 s")
    print(token)

asyncio.run(main(sys.argv[1]))
"""

_ONBOARDING = {"version": 4, "minor_version": 1, "key": "onboarding",
               "data": {"done": ["user", "core_config", "analytics", "integration"]}}  # fmt: skip


class HaError(AssertionError):
    """Home Assistant did not do what the test needed (with its log tail in the message)."""


class HomeAssistant(ServiceProcess):
    """One Home Assistant core process; ``configuration.yaml`` is written by the caller or :meth:`write_config`."""

    stop_timeout_s = STOP_TIMEOUT_S

    def __init__(self, config_dir: Path, *, venv: Path, extra_config: str = "") -> None:
        config_dir.mkdir(parents=True, exist_ok=True)
        super().__init__(config_dir / "hass-stdout.log")
        self.config_dir = config_dir
        self.venv = venv
        self.port = free_port()
        self.extra_config = extra_config
        self.token = ""
        self.started_s = 0.0  # how long the last start took until the API answered

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def db_path(self) -> Path:
        return self.config_dir / "home-assistant_v2.db"

    def write_config(self) -> None:
        base = f"""\
homeassistant:
  name: genre-pi test
  latitude: 0
  longitude: 0
  elevation: 0
  unit_system: metric
  time_zone: UTC
  currency: EUR
  country: DE
  language: en
http:
  server_host: 127.0.0.1
  server_port: {self.port}
api:
config:
recorder:
  commit_interval: 1
logger:
  default: warning
"""
        (self.config_dir / "configuration.yaml").write_text(base + self.extra_config)

    def _prepare_auth(self) -> None:
        if self.token:
            return
        storage = self.config_dir / ".storage"
        storage.mkdir(exist_ok=True)
        (storage / "onboarding").write_text(json.dumps(_ONBOARDING))
        proc = subprocess.run(
            [str(self.venv / "bin" / "python"), "-c", _AUTH_SCRIPT, str(self.config_dir)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        token = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
        if proc.returncode != 0 or token.count(".") != 2:
            raise HaError(f"creating the owner and token failed: {proc.stderr.strip()[-1500:]}")
        self.token = token

    def start(self, timeout: float = START_TIMEOUT_S) -> Self:
        if not (self.config_dir / "configuration.yaml").exists():
            self.write_config()
        self._prepare_auth()
        t0 = time.monotonic()
        cmd = [str(self.venv / "bin" / "hass"), "--config", str(self.config_dir), "--skip-pip"]
        self._launch(cmd, at_exit=self.kill)
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                raise HaError(f"Home Assistant exited during start-up:\n{self.log_tail()}")
            try:
                if self.get("/api/config").get("state") == "RUNNING":
                    self.started_s = time.monotonic() - t0
                    return self
            except (OSError, HaError):
                pass
            time.sleep(0.25)
        raise HaError(f"Home Assistant not running after {timeout:.0f} s:\n{self.log_tail()}")

    def restart(self) -> None:
        """A clean stop (SIGTERM, as ``ha core restart`` does) and a start on the same config dir and port."""
        self._signal_and_wait(signal.SIGTERM, STOP_TIMEOUT_S)
        self.start()

    # -- REST ----------------------------------------------------------------------------

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None, *, raw_text: bool = False) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=15) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raise HaError(f"{method} {path}: HTTP {exc.code} {exc.read()[:500]!r}") from None
        if raw_text:
            return raw.decode()
        return json.loads(raw) if raw else None

    def get(self, path: str) -> Any:
        return self._request("GET", path)

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self._request("POST", path, body or {})

    def render(self, template: str) -> str:
        """A Jinja template rendered by Home Assistant (``/api/template``), as text."""
        text: str = self._request("POST", "/api/template", {"template": template}, raw_text=True)
        return text

    def state(self, entity_id: str) -> State | None:
        try:
            doc: State = self.get(f"/api/states/{entity_id}")
        except HaError as exc:
            if "HTTP 404" in str(exc):
                return None
            raise
        return doc

    def wait_state(self, entity_id: str, pred: Callable[[State], bool], timeout: float, poll_s: float = 0.05) -> State:
        """Poll until ``pred(state)``; returns that state (``state["seen_at"]`` = monotonic time it was read)."""
        deadline = time.monotonic() + timeout
        last: State | None = None
        while True:
            last = self.state(entity_id)
            if last is not None and pred(last):
                last["seen_at"] = time.monotonic()
                return last
            if time.monotonic() >= deadline:
                raise HaError(f"{entity_id}: condition not met within {timeout} s; last state {last}")
            time.sleep(poll_s)

    def setup_mqtt(self, host: str, port: int) -> dict[str, Any]:
        """Add the MQTT integration through its config flow, as the UI does; returns the created entry."""
        flow = self.post("/api/config/config_entries/flow", {"handler": "mqtt", "show_advanced_options": False})
        for _ in range(3):  # the broker form, possibly after a menu
            if flow.get("type") == "create_entry":
                result: dict[str, Any] = flow["result"]
                return result
            if flow.get("type") == "menu":
                flow = self.post(f"/api/config/config_entries/flow/{flow['flow_id']}", {"next_step_id": "broker"})
                continue
            if flow.get("type") != "form":
                raise HaError(f"unexpected MQTT config flow step: {flow}")
            flow = self.post(f"/api/config/config_entries/flow/{flow['flow_id']}", {"broker": host, "port": port})
        raise HaError(f"MQTT config flow did not finish: {flow}")

    def call(self, domain: str, service: str, **data: Any) -> Any:
        return self.post(f"/api/services/{domain}/{service}", data)

    def check_config(self) -> subprocess.CompletedProcess[str]:
        """Home Assistant's own configuration check (``hass --script check_config``) on this config dir."""
        return subprocess.run(
            [str(self.venv / "bin" / "hass"), "--script", "check_config", "--config", str(self.config_dir)],
            capture_output=True, text=True, timeout=180,
        )  # fmt: skip

    # -- the recorder and the log -----------------------------------------------------

    def recorder_rows(
        self, entity_ids: list[str], since_ts: float = 0.0, until_ts: float = float("inf")
    ) -> dict[str, int]:
        """Rows in the recorder's ``states`` table per entity id, last_updated in (``since_ts``, ``until_ts``]."""
        with sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=10) as db:
            rows = db.execute(
                "SELECT m.entity_id, COUNT(*) FROM states s JOIN states_meta m ON s.metadata_id = m.metadata_id "
                f"WHERE s.last_updated_ts > ? AND s.last_updated_ts <= ? "
                f"AND m.entity_id IN ({','.join('?' * len(entity_ids))}) GROUP BY m.entity_id",
                (since_ts, until_ts, *entity_ids),
            ).fetchall()
        counts = dict.fromkeys(entity_ids, 0)
        counts.update({str(e): int(n) for e, n in rows})
        return counts

    def recorder_states(self, entity_id: str, since_ts: float = 0.0, until_ts: float = float("inf")) -> list[str]:
        with sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=10) as db:
            rows = db.execute(
                "SELECT s.state FROM states s JOIN states_meta m ON s.metadata_id = m.metadata_id "
                "WHERE m.entity_id = ? AND s.last_updated_ts > ? AND s.last_updated_ts <= ? "
                "ORDER BY s.last_updated_ts",
                (entity_id, since_ts, until_ts),
            ).fetchall()
        return [str(r[0]) for r in rows]

    def recorder_committed_after(self, ts: float) -> bool:
        """Whether the recorder has committed a state row stamped after ``ts`` (epoch s).

        It writes events in order, so then every row up to ``ts`` is in the database too: wait for this
        instead of for its commit interval.
        """
        if not self.db_path.exists():
            return False
        with sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=10) as db:
            row = db.execute("SELECT 1 FROM states WHERE last_updated_ts > ? LIMIT 1", (ts,)).fetchone()
        return row is not None

    def log_lines(self, levels: tuple[str, ...] = ("WARNING", "ERROR", "CRITICAL")) -> list[str]:
        """Log lines at these levels from every start (``home-assistant.log`` keeps only the last two runs;
        the console copy is appended across starts). Each line starts with a timestamp, then the level."""
        return [line for line in self.log_text().splitlines() if any(f" {level} " in line[:40] for level in levels)]

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])


@dataclass
class House:
    ha: HomeAssistant
    broker: MosquittoBroker
    probe: MqttProbe  # subscribed since MQTT was set up in Home Assistant
    up_s: float  # Home Assistant's start plus its MQTT config flow


@contextlib.contextmanager
def running_house(
    work: Path,
    venv: Path,
    *,
    extra_config: str = "",
    blueprints: Path | None = None,
    topics: str | list[str] = "genre/#",
    needs: Iterable[Path] = (),
) -> Iterator[House]:
    """A private mosquitto and a Home Assistant with MQTT added through its config flow, both under ``work``.

    ``blueprints``: a directory whose ``*.yaml`` Home Assistant finds as ``<its name>/<file>``. ``needs``:
    files the tests read, checked before the slow start. Skips (fails with ``GENRE_PI_REQUIRE_SERVICES=1``)
    without mosquitto. Everything is stopped on exit, also when the start failed.
    """
    if not mosquitto_available():
        unavailable("mosquitto not installed: apt-get install mosquitto mosquitto-clients")
    for path in needs:
        if not path.is_file():
            pytest.skip(f"{path} missing")
    broker = MosquittoBroker(work / "mosquitto").start()
    ha = HomeAssistant(work / "config", venv=venv, extra_config=extra_config)
    probe: MqttProbe | None = None
    try:
        if blueprints is not None:
            target = ha.config_dir / "blueprints" / "automation" / blueprints.name
            target.mkdir(parents=True)
            for blueprint in blueprints.glob("*.yaml"):
                shutil.copy(blueprint, target / blueprint.name)
        t0 = time.monotonic()
        ha.start()
        entry = ha.setup_mqtt(broker.host, broker.port)
        up_s = time.monotonic() - t0
        version = ha.get("/api/config")["version"]
        print(f"\nHome Assistant {version} up in {ha.started_s:.1f} s; MQTT entry {entry['title']}")
        probe = MqttProbe(broker, topics)
        yield House(ha, broker, probe, up_s)
    finally:
        if probe is not None:
            probe.close()
        ha.stop()
        broker.stop()
