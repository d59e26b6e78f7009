"""Home Assistant MQTT discovery payloads; pure functions of the settings and the model's labels.

One device per daemon with two entities: an ``enum`` genre sensor (options = the model's labels
plus ``silence``/``unknown``) and a confidence sensor in %. Both are unavailable when the daemon
is offline (``availability`` topic, the Last Will) or when its audio source is (the state JSON's
``status`` is ``unavailable``), since a stale genre on a dashboard is worse than none.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from daemon import __version__
from daemon.gates import SILENCE, UNAVAILABLE, UNKNOWN
from daemon.settings import Settings

ONLINE = "online"
OFFLINE = "offline"


@dataclass(frozen=True)
class Topics:
    """Every topic the daemon publishes to or subscribes to."""

    availability: str
    genre: str
    state: str
    ha_status: str  # Home Assistant's birth/will topic: "online" means re-send discovery


def topics(settings: Settings) -> Topics:
    return Topics(
        availability=settings.topic("availability"),
        genre=settings.topic("genre"),
        state=settings.topic("state"),
        ha_status=f"{settings.discovery.prefix}/status",
    )


def node_id(device_id: str) -> str:
    """``device_id`` reduced to what Home Assistant allows in discovery topics ([A-Za-z0-9_-])."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", device_id)


def genre_options(labels: tuple[str, ...]) -> list[str]:
    """Every value the genre topic can carry."""
    return [*labels, *(extra for extra in (SILENCE, UNKNOWN) if extra not in labels)]


def discovery_messages(settings: Settings, labels: tuple[str, ...], model_version: str) -> dict[str, str]:
    """Discovery config topic -> JSON payload (publish retained)."""
    t = topics(settings)
    node = node_id(settings.mqtt.device_id)
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
    common = {
        "availability": availability,
        "availability_mode": "all",
        "device": device,
        "origin": {"name": "genre-pi", "sw_version": __version__},
        "qos": settings.mqtt.qos,
    }
    genre = {
        "name": "Genre",
        "unique_id": f"genre_pi_{node}_genre",
        "state_topic": t.genre,
        "device_class": "enum",
        "options": genre_options(labels),
        "icon": "mdi:music-box-multiple",
        "json_attributes_topic": t.state,
        "json_attributes_template": "{{ {'top3': value_json.top3, 'rms_db': value_json.rms_db} | tojson }}",
        **common,
    }
    confidence = {
        "name": "Genre confidence",
        "unique_id": f"genre_pi_{node}_confidence",
        "state_topic": t.state,
        "value_template": "{{ (value_json.confidence * 100) | round(1) }}",
        "unit_of_measurement": "%",
        "state_class": "measurement",
        "icon": "mdi:percent",
        **common,
    }
    return {
        f"{prefix}/sensor/{node}/genre/config": json.dumps(genre, separators=(",", ":")),
        f"{prefix}/sensor/{node}/confidence/config": json.dumps(confidence, separators=(",", ":")),
    }
