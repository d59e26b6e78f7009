"""Home Assistant discovery payloads: pure checks (a real Home Assistant reads them in test_home_assistant.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from daemon.discovery import discovery_messages, entity_id, genre_options, node_id, object_id, topics
from daemon.errors import ConfigError
from daemon.settings import Settings, load_settings

LABELS = ("blues", "classical", "jazz", "rock", "not_music")
RESERVED = {"unknown", "unavailable"}  # Home Assistant's own "no value" states


def settings(tmp_path: Path, text: str = "") -> Settings:
    p = tmp_path / "c.toml"
    p.write_text("[mqtt]\nprefix = 'genre'\ndevice_id = 'living.room'\n" + text)
    return load_settings(p, environ={})


def payloads(tmp_path: Path, text: str = "", labels: tuple[str, ...] = LABELS) -> dict[str, dict[str, Any]]:
    msgs = discovery_messages(settings(tmp_path, text), labels, "v7")
    return {topic.split("/")[-2]: json.loads(body) for topic, body in msgs.items()}


def test_topics_and_node_id(tmp_path: Path) -> None:
    t = topics(settings(tmp_path))
    assert (t.availability, t.genre, t.state, t.diagnostics) == (
        "genre/living.room/availability",
        "genre/living.room/genre",
        "genre/living.room/state",
        "genre/living.room/diagnostics",
    )
    assert t.ha_status == "homeassistant/status"
    assert node_id("living.room") == "living_room"


def test_three_sensors_under_the_node_topic(tmp_path: Path) -> None:
    topics_ = set(discovery_messages(settings(tmp_path), LABELS, "v7"))
    assert topics_ == {f"homeassistant/sensor/living_room/{key}/config" for key in ("genre", "confidence", "level")}


def test_genre_sensor_options_hold_no_reserved_state(tmp_path: Path) -> None:
    genre = payloads(tmp_path)["genre"]
    assert genre["device_class"] == "enum"
    assert genre["options"] == ["blues", "classical", "jazz", "rock", "uncertain", "not_music", "silence"]
    assert genre["state_topic"] == "genre/living.room/genre"
    assert genre["unique_id"] == "genre_pi_living_room_genre"
    assert genre["availability"][0]["topic"] == "genre/living.room/availability"
    assert genre["availability_mode"] == "all"
    # An old bundle calls its reject class "unknown": it is published as not_music, never as "unknown".
    old = payloads(tmp_path, labels=("jazz", "rock", "unknown"))["genre"]
    assert old["options"] == ["jazz", "rock", "uncertain", "not_music", "silence"]
    assert not RESERVED & set(old["options"])
    assert genre_options(("jazz", "unknown")) == ["jazz", "uncertain", "not_music", "silence"]


def test_genre_sensor_has_no_attributes_so_it_records_only_changes(tmp_path: Path) -> None:
    genre = payloads(tmp_path)["genre"]
    assert not {k for k in genre if k.startswith("json_attributes")}
    assert "entity_category" not in genre  # the genre is the device's main reading, not a diagnostic


def test_confidence_and_level_are_diagnostics_on_the_diagnostics_topic(tmp_path: Path) -> None:
    p = payloads(tmp_path)
    conf, level = p["confidence"], p["level"]
    for cfg in (conf, level):
        assert cfg["state_topic"] == "genre/living.room/diagnostics"
        assert cfg["entity_category"] == "diagnostic" and cfg["state_class"] == "measurement"
    assert conf["unit_of_measurement"] == "%" and "value_json.confidence * 100" in conf["value_template"]
    assert level["unit_of_measurement"] == "dBFS" and level["json_attributes_topic"] == conf["state_topic"]
    assert "top3" in level["json_attributes_template"] and "counters" in level["json_attributes_template"]


def test_every_entity_is_unavailable_with_the_daemon_or_its_audio(tmp_path: Path) -> None:
    for cfg in payloads(tmp_path).values():
        avail = cfg["availability"]
        assert [a["topic"] for a in avail] == ["genre/living.room/availability", "genre/living.room/state"]
        assert "'unavailable'" in avail[1]["value_template"] and cfg["availability_mode"] == "all"


def test_entity_ids_follow_the_device_id_not_the_display_name(tmp_path: Path) -> None:
    named = payloads(tmp_path, "[discovery]\ndevice_name = 'Wohnzimmer Anlage'\n")
    assert {k: v["object_id"] for k, v in named.items()} == {
        "genre": "genre_pi_living_room_genre",
        "confidence": "genre_pi_living_room_confidence",
        "level": "genre_pi_living_room_level",
    }
    assert named["genre"]["default_entity_id"] == "sensor.genre_pi_living_room_genre"
    assert named["genre"]["device"]["name"] == "Wohnzimmer Anlage"
    assert entity_id("Kitchen-2", "genre") == "sensor.genre_pi_kitchen_2_genre"
    assert object_id("a..b", "level") == "genre_pi_a_b_level"


def test_all_entities_share_one_device(tmp_path: Path) -> None:
    configs = list(payloads(tmp_path).values())
    assert all(c["device"] == configs[0]["device"] for c in configs)
    assert configs[0]["device"]["identifiers"] == ["genre_pi_living_room"]
    assert configs[0]["device"]["name"] == "Genre Pi living.room"
    assert len({c["unique_id"] for c in configs}) == 3


def test_custom_discovery_prefix_and_qos(tmp_path: Path) -> None:
    msgs = discovery_messages(
        settings(tmp_path, "qos = 0\n[discovery]\nprefix = 'ha/disc'\ndevice_name = 'Kitchen'\n"), LABELS, "v7"
    )
    assert all(topic.startswith("ha/disc/sensor/living_room/") for topic in msgs)
    assert all(json.loads(v)["qos"] == 0 and json.loads(v)["device"]["name"] == "Kitchen" for v in msgs.values())


def test_diagnostics_interval_setting(tmp_path: Path) -> None:
    assert settings(tmp_path).discovery.diagnostics_interval_s == 60.0
    assert settings(tmp_path, "[discovery]\ndiagnostics_interval_s = 300\n").discovery.diagnostics_interval_s == 300
    with pytest.raises(ConfigError, match="diagnostics_interval_s"):
        settings(tmp_path, "[discovery]\ndiagnostics_interval_s = 0.5\n")
