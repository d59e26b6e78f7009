"""Discovery of the tag sensors (vocals, danceable): ids from the device id, states that are never reserved,
the binary sensor's template, and nothing extra for a bundle without tags."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from daemon.discovery import discovery_messages, entity_id, topics
from daemon.settings import Settings, load_settings
from edge.decide.tags import TagSensorParams

LABELS = ("blues", "classical", "jazz", "rock", "not_music")
SENSORS = {"vocals": TagSensorParams("instrumental", "instrumental", "vocal", "none"),
           "danceable": TagSensorParams("dance", "danceable", "not_danceable", "none")}


def settings(tmp_path: Path) -> Settings:
    p = tmp_path / "c.toml"
    p.write_text("[mqtt]\nprefix = 'genre'\ndevice_id = 'living.room'\n")
    return load_settings(p, environ={})


def by_topic(tmp_path: Path, sensors: dict[str, TagSensorParams] | None) -> dict[str, dict[str, Any]]:
    return {t: json.loads(body) for t, body in discovery_messages(settings(tmp_path), LABELS, "v7", sensors).items()}


def test_vocals_and_danceable_entities_follow_the_genre_sensors_conventions(tmp_path: Path) -> None:
    msgs = by_topic(tmp_path, SENSORS)
    vocals = msgs["homeassistant/sensor/living_room/vocals/config"]
    dance = msgs["homeassistant/binary_sensor/living_room/danceable/config"]
    genre = msgs["homeassistant/sensor/living_room/genre/config"]
    assert vocals["state_topic"] == "genre/living.room/vocals" and dance["state_topic"] == "genre/living.room/danceable"
    assert vocals["default_entity_id"] == entity_id("living.room", "vocals") == "sensor.genre_pi_living_room_vocals"
    assert dance["default_entity_id"] == entity_id("living.room", "danceable", "binary_sensor")
    assert vocals["unique_id"] == "genre_pi_living_room_vocals"
    assert dance["unique_id"] == "genre_pi_living_room_danceable"
    assert vocals["device_class"] == "enum" and set(vocals["options"]) == {"vocal", "instrumental", "none"}
    assert not {"unknown", "unavailable"} & set(vocals["options"])
    # "none" (no music) must map to OFF, never to a payload Home Assistant would log as unknown.
    assert dance["value_template"] == "{{ 'ON' if value == 'danceable' else 'OFF' }}"
    for entity in (vocals, dance):
        assert entity["availability"] == genre["availability"] and entity["device"] == genre["device"]
        assert "json_attributes_topic" not in entity  # a row only when the state changes
    level = msgs["homeassistant/sensor/living_room/level/config"]
    assert "value_json.tags" in level["json_attributes_template"]
    assert topics(settings(tmp_path), SENSORS).sensors == {"vocals": "genre/living.room/vocals",
                                                            "danceable": "genre/living.room/danceable"}


def test_a_bundle_without_tags_gets_no_tag_entities(tmp_path: Path) -> None:
    msgs = by_topic(tmp_path, None)
    assert not [t for t in msgs if t.endswith(("/vocals/config", "/danceable/config"))]
    assert "tags" not in msgs["homeassistant/sensor/living_room/level/config"]["json_attributes_template"]
    assert topics(settings(tmp_path)).sensors == {}
