"""Home Assistant MQTT discovery payloads; pure functions of the settings and the model's labels.

One device per daemon with three entities, each recording only what changes:

- **Genre**: an ``enum`` sensor on the ``genre`` topic (published on change only), options = the
  model's genres plus ``uncertain``/``not_music``/``silence`` (never a state Home Assistant reserves).
  No attributes, so Home Assistant writes a row only when the genre changes.
- **Genre confidence** (%) and **Audio level** (dBFS, with top-3 and counters as attributes):
  diagnostic entities on the ``diagnostics`` topic, published every ``diagnostics_interval_s``.

With a tagger bundle (and ``[tags] enabled``) two more, each on its own retained topic and published on change
only: **Vocals** (an ``enum`` sensor: ``vocal``, ``instrumental``, ``none`` without music) and **Danceable** (a
binary sensor, off without music); the level entity then also carries the window's top five tags.

All go unavailable when the daemon is offline (``availability`` topic, the Last Will) or when its
audio source is (the state JSON's ``status`` is ``unavailable``): a stale genre on a dashboard is
worse than none. Entity ids come from ``mqtt.device_id`` only (``sensor.genre_pi_<device_id>_genre``),
never from the display name, so renaming the device does not break automations.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from daemon import __version__
from daemon.settings import Settings
from edge.decide.states import UNAVAILABLE, published_options
from edge.decide.tags import TagSensorParams

ONLINE = "online"
OFFLINE = "offline"


@dataclass(frozen=True)
class Topics:
    """Every topic the daemon publishes to or subscribes to."""

    availability: str
    genre: str
    state: str
    diagnostics: str
    ha_status: str  # Home Assistant's birth/will topic: "online" means re-send discovery
    sensors: dict[str, str]  # tag sensor name -> its topic (empty without a tagger bundle)


def topics(settings: Settings, sensors: Mapping[str, object] | None = None) -> Topics:
    return Topics(
        availability=settings.topic("availability"),
        genre=settings.topic("genre"),
        state=settings.topic("state"),
        diagnostics=settings.topic("diagnostics"),
        ha_status=f"{settings.discovery.prefix}/status",
        sensors={name: settings.topic(name) for name in sensors or {}},
    )


def node_id(device_id: str) -> str:
    """``device_id`` reduced to what Home Assistant allows in discovery topics ([A-Za-z0-9_-])."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", device_id)


def object_id(device_id: str, entity: str) -> str:
    """The entity id's object part, as Home Assistant will slugify it: ``genre_pi_<device_id>_<entity>``."""
    return re.sub(r"[^a-z0-9]+", "_", f"genre_pi_{device_id}_{entity}".lower()).strip("_")


def entity_id(device_id: str, entity: str, component: str = "sensor") -> str:
    """The entity id Home Assistant gives a new entity, e.g. ``sensor.genre_pi_kitchen_genre``."""
    return f"{component}.{object_id(device_id, entity)}"


def genre_options(labels: tuple[str, ...]) -> list[str]:
    """Every value the genre topic can carry (the model's genres and the published non-genres)."""
    return published_options(labels)


def discovery_messages(settings: Settings, labels: tuple[str, ...], model_version: str,
                       sensors: Mapping[str, TagSensorParams] | None = None) -> dict[str, str]:
    """Discovery config topic -> JSON payload (publish retained); ``sensors``: the tag sensors published."""
    sensors = sensors or {}
    t = topics(settings, sensors)
    device_id = settings.mqtt.device_id
    node = node_id(device_id)
    prefix = settings.discovery.prefix
    device = {
        "identifiers": [f"genre_pi_{node}"],
        "name": settings.discovery.device_name,
        "manufacturer": "genre-pi",
        "model": f"genre classifier (model {model_version})",
        "sw_version": __version__,
    }
    availability = [
        {"topic": t.availability, "payload_available": ONLINE, "payload_not_available": OFFLINE},
        {
            "topic": t.state,
            "value_template": f"{{{{ 'offline' if value_json.status == '{UNAVAILABLE}' else 'online' }}}}",
            "payload_available": ONLINE,
            "payload_not_available": OFFLINE,
        },
    ]

    def entity(key: str, name: str, component: str = "sensor", **fields: Any) -> tuple[str, str]:
        oid = object_id(device_id, key)
        config = {
            "name": name,
            "unique_id": f"genre_pi_{node}_{key}",
            # Home Assistant up to 2025.9 reads object_id; 2025.10 and later read default_entity_id
            # (and drop object_id in 2026.4). Either way the id is set from the device id, once.
            "object_id": oid,
            "default_entity_id": f"{component}.{oid}",
            **fields,
            "availability": availability,
            "availability_mode": "all",
            "device": device,
            "origin": {"name": "genre-pi", "sw_version": __version__},
            "qos": settings.mqtt.qos,
        }
        return f"{prefix}/{component}/{node}/{key}/config", json.dumps(config, separators=(",", ":"))

    attributes = "{'top3': value_json.top3, 'counters': value_json.counters" + (
        ", 'tags': value_json.tags" if sensors else "") + "}"
    tag_entities = []
    if "vocals" in sensors:
        p = sensors["vocals"]
        tag_entities.append(entity("vocals", "Vocals", state_topic=t.sensors["vocals"], device_class="enum",
                                   options=[p.off, p.on, p.idle], icon="mdi:microphone-variant"))
    if "danceable" in sensors:
        p = sensors["danceable"]
        # "none" (no music) is off too: a binary sensor has two states, and an unknown payload would be logged.
        tag_entities.append(entity("danceable", "Danceable", "binary_sensor", state_topic=t.sensors["danceable"],
                                   value_template=f"{{{{ 'ON' if value == '{p.on}' else 'OFF' }}}}",
                                   icon="mdi:dance-ballroom"))
    return dict(
        [
            entity(
                "genre",
                "Genre",
                state_topic=t.genre,
                device_class="enum",
                options=genre_options(labels),
                icon="mdi:music-box-multiple",
            ),
            entity(
                "confidence",
                "Genre confidence",
                state_topic=t.diagnostics,
                value_template="{{ (value_json.confidence * 100) | round(0) }}",
                unit_of_measurement="%",
                state_class="measurement",
                entity_category="diagnostic",
                icon="mdi:percent",
            ),
            entity(
                "level",
                "Audio level",
                state_topic=t.diagnostics,
                value_template="{{ value_json.rms_db }}",
                unit_of_measurement="dBFS",
                state_class="measurement",
                entity_category="diagnostic",
                icon="mdi:microphone",
                json_attributes_topic=t.diagnostics,
                json_attributes_template="{{ " + attributes + " | tojson }}",
            ),
            *tag_entities,
        ]
    )
