"""Home Assistant discovery payloads: pure checks, and Home Assistant's own schema (slow, cached venv)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from daemon.discovery import discovery_messages, genre_options, node_id, topics
from daemon.settings import Settings, load_settings

LABELS = ("blues", "classical", "jazz", "rock")


def settings(tmp_path: Path, text: str = "") -> Settings:
    p = tmp_path / "c.toml"
    p.write_text("[mqtt]\nprefix = 'genre'\ndevice_id = 'living.room'\n" + text)
    return load_settings(p, environ={})


def payloads(tmp_path: Path, text: str = "") -> dict[str, dict[str, Any]]:
    msgs = discovery_messages(settings(tmp_path, text), LABELS, "v7")
    return {topic: json.loads(body) for topic, body in msgs.items()}


def test_topics_and_node_id(tmp_path: Path) -> None:
    t = topics(settings(tmp_path))
    assert (t.availability, t.genre, t.state) == (
        "genre/living.room/availability",
        "genre/living.room/genre",
        "genre/living.room/state",
    )
    assert t.ha_status == "homeassistant/status"
    assert node_id("living.room") == "living_room"


def test_genre_sensor_is_an_enum_with_labels_plus_silence_unknown(tmp_path: Path) -> None:
    p = payloads(tmp_path)
    genre = p["homeassistant/sensor/living_room/genre/config"]
    assert genre["device_class"] == "enum"
    assert genre["options"] == [*LABELS, "silence", "unknown"]
    assert genre["state_topic"] == "genre/living.room/genre"
    assert genre["unique_id"] == "genre_pi_living_room_genre"
    assert genre["availability"][0]["topic"] == "genre/living.room/availability"
    assert genre["availability_mode"] == "all"


def test_confidence_sensor_in_percent_from_state_json(tmp_path: Path) -> None:
    conf = payloads(tmp_path)["homeassistant/sensor/living_room/confidence/config"]
    assert conf["state_topic"] == "genre/living.room/state"
    assert conf["unit_of_measurement"] == "%"
    assert "value_json.confidence * 100" in conf["value_template"]


def test_both_entities_share_one_device(tmp_path: Path) -> None:
    a, b = payloads(tmp_path).values()
    assert a["device"] == b["device"]
    assert a["device"]["identifiers"] == ["genre_pi_living_room"]
    assert a["device"]["name"] == "Genre Pi living.room"
    assert a["unique_id"] != b["unique_id"]


def test_custom_discovery_prefix_and_qos(tmp_path: Path) -> None:
    p = payloads(tmp_path, "qos = 0\n[discovery]\nprefix = 'ha/disc'\ndevice_name = 'Kitchen'\n")
    assert set(p) == {"ha/disc/sensor/living_room/genre/config", "ha/disc/sensor/living_room/confidence/config"}
    assert all(v["qos"] == 0 and v["device"]["name"] == "Kitchen" for v in p.values())


def test_labels_that_clash_with_gate_states_are_not_duplicated() -> None:
    assert genre_options(("speech", "silence", "jazz")) == ["speech", "silence", "jazz", "unknown"]


@pytest.mark.slow
def test_home_assistant_accepts_the_payloads(tmp_path: Path, ha_schema: Any) -> None:
    for topic, payload in payloads(tmp_path).items():
        # HA 2024.3's sensor schema predates "options"; newer releases read it for enum sensors.
        config = ha_schema(payload, allow_dropped={"options"} if "options" in payload else set())
        assert config["state_topic"] == payload["state_topic"], topic
