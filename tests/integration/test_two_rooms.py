"""Two rooms, one house: two daemons on one real mosquitto and one real Home Assistant core.

Each daemon (its own device id, the real daemon on real music, the tiny model) must be a device of its own in
Home Assistant with its own three entities, and whatever happens to one daemon (SIGKILL, so the broker
publishes its Last Will; a clean stop; a restart) must never mark the other one's entities unavailable.
"Never" is read from Home Assistant's recorder, which writes every state change, so an unavailable that lasted
a few milliseconds between two polls counts too. One Home Assistant serves the module (its start is the slow
part); each test starts its own daemons.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from daemon.discovery import entity_id
from tests.integration.conftest import DaemonProc
from tests.support.ha_venv import INSTALL_TIMEOUT_S
from tests.support.homeassistant import HomeAssistant, House, running_house
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

# Two ids that Home Assistant must keep apart; the second exercises the slug (case, '-').
KITCHEN, LIVING = "kitchen", "Living-Room"
KEYS = ("genre", "confidence", "level")
# Paced (4x real time) and looping, so both daemons stay up for the whole test.
PACED = ["--speed", "4", "--loop", "--hop", "0.5"]
GONE = ("unavailable", "unknown")
MUSIC = Path("rock") / "rock.00000.ogg"


def entities(device: str) -> list[str]:
    return [entity_id(device, key) for key in KEYS]


@pytest.fixture(scope="module")
def house(ha_venv: Path, tmp_path_factory: pytest.TempPathFactory, gtzan_dir: Path) -> Iterator[House]:
    with running_house(tmp_path_factory.mktemp("two-rooms"), ha_venv, needs=[gtzan_dir / MUSIC]) as house:
        yield house


@pytest.fixture
def room(house: House, daemon: Callable[..., DaemonProc], gtzan_dir: Path) -> Callable[[str], DaemonProc]:
    """``room(device_id)``: a daemon for that room, as a house runs it (prefix ``genre``, HA's discovery)."""

    def start(device: str) -> DaemonProc:
        return daemon(
            gtzan_dir / MUSIC, prefix="genre", discovery_prefix="homeassistant", device_id=device,
            target=house.broker, extra=PACED,
        )  # fmt: skip

    return start


def available(ha: HomeAssistant, device: str, timeout: float = 40.0) -> None:
    """Every entity of ``device`` shows a reading (its daemon online and deciding)."""
    for eid in entities(device):
        ha.wait_state(eid, lambda s: s["state"] not in GONE, timeout=timeout)


def unavailable(ha: HomeAssistant, device: str, timeout: float = 20.0) -> None:
    for eid in entities(device):
        ha.wait_state(eid, lambda s: s["state"] == "unavailable", timeout=timeout, poll_s=0.02)


def recorded_states(ha: HomeAssistant, device: str, since_ts: float) -> dict[str, list[str]]:
    """Every state Home Assistant recorded for ``device``'s entities after ``since_ts`` until now.

    A state set through the REST API just now is the marker: the recorder writes in order, so once the marker
    is committed, every earlier change is in the database too.
    """
    marker_ts = time.time()
    ha.post("/api/states/sensor.two_rooms_marker", {"state": str(marker_ts)})
    wait_until(lambda: ha.recorder_committed_after(marker_ts), timeout=60, what="the recorder's commit of the marker")
    return {eid: ha.recorder_states(eid, since_ts=since_ts) for eid in entities(device)}


# The first test starts the module's Home Assistant, and on a machine without the cached venv builds that too.
@pytest.mark.timeout(INSTALL_TIMEOUT_S + 600)
def test_two_daemons_are_two_devices_each_with_its_own_entities(
    house: House, room: Callable[[str], DaemonProc]
) -> None:
    ha = house.ha
    kitchen, living = room(KITCHEN), room(LIVING)
    available(ha, KITCHEN)
    available(ha, LIVING)
    devices = {d: ha.render(f"{{{{ device_id('{entity_id(d, 'genre')}') }}}}") for d in (KITCHEN, LIVING)}
    assert devices[KITCHEN] != devices[LIVING] and all(devices.values()), devices
    for device, other in ((KITCHEN, LIVING), (LIVING, KITCHEN)):
        own = json.loads(ha.render(f"{{{{ device_entities('{devices[device]}') | sort | tojson }}}}"))
        assert own == sorted(entities(device)), f"{device}'s device holds {own}"
        assert not set(own) & set(entities(other))
        assert ha.render(f"{{{{ device_attr('{devices[device]}', 'name') }}}}") == f"Genre Pi {device}"
    # Exactly the six ids, no "_2": neither room took an id (or a unique id, which HA would refuse) of the other.
    ours = json.loads(ha.render("{{ integration_entities('mqtt') | sort | tojson }}"))
    assert ours == sorted([*entities(KITCHEN), *entities(LIVING)]), ours
    # Each room's genre is its own daemon's retained genre.
    for d, device in ((kitchen, KITCHEN), (living, LIVING)):
        shown = ha.state(entity_id(device, "genre"))
        assert shown is not None and shown["state"] == house.probe.received(d.topic("genre"))[-1].text
    assert kitchen.terminate() == 0 and living.terminate() == 0, kitchen.log() + living.log()
    print(f"two devices, six entities: {ours}")


def test_one_rooms_last_will_stop_and_restart_never_make_the_other_unavailable(
    house: House, room: Callable[[str], DaemonProc]
) -> None:
    ha, probe = house.ha, house.probe
    kitchen, living = room(KITCHEN), room(LIVING)
    available(ha, KITCHEN)
    available(ha, LIVING)

    # The kitchen's daemon dies without a goodbye: the broker publishes its Will, then it comes back.
    since_wall, since = time.time(), time.monotonic()
    kitchen.signal(signal.SIGKILL)
    kitchen.wait(5)
    will = probe.wait_for(kitchen.topic("availability"), lambda m: m.text == "offline", timeout=20, since=since)
    unavailable(ha, KITCHEN)
    will_s = will.received_at - since
    kitchen = room(KITCHEN)
    available(ha, KITCHEN)
    living_seen = recorded_states(ha, LIVING, since_wall)
    kitchen_seen = recorded_states(ha, KITCHEN, since_wall)
    assert all("unavailable" in states for states in kitchen_seen.values()), kitchen_seen  # the Will did land
    assert not any(s in GONE for states in living_seen.values() for s in states), living_seen
    assert not [m for m in probe.received(living.topic("availability")) if m.received_at > since], "living room"

    # The living room's daemon stops cleanly (its own offline), then restarts.
    since_wall, since = time.time(), time.monotonic()
    assert living.terminate() == 0, living.log()
    unavailable(ha, LIVING)
    living = room(LIVING)
    available(ha, LIVING)
    kitchen_seen = recorded_states(ha, KITCHEN, since_wall)
    living_seen = recorded_states(ha, LIVING, since_wall)
    assert all("unavailable" in states for states in living_seen.values()), living_seen
    assert not any(s in GONE for states in kitchen_seen.values() for s in states), kitchen_seen
    assert not [m for m in probe.received(kitchen.topic("availability")) if m.received_at > since], "kitchen"
    assert kitchen.terminate() == 0 and living.terminate() == 0, kitchen.log() + living.log()
    print(f"kitchen SIGKILL -> its Will at the broker {will_s * 1e3:.0f} ms; the other room never unavailable")
