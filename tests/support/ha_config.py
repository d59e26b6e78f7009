"""The Home Assistant configuration the kitchen tests run (tests/integration/test_home_assistant.py).

The shipped blueprints run as automations, each counting its firings in an input_number; a control
automation with the genre blueprint's trigger and a hold a second longer tells a test when a "nothing
fired" check has waited long enough. Give :func:`tests.support.homeassistant.running_house`
``extra_config=HA_CONFIG, blueprints=BLUEPRINTS``.
"""

from __future__ import annotations

from pathlib import Path

from daemon.discovery import entity_id

__all__ = [
    "ALL_ENTITIES", "BLUEPRINTS", "CONFIDENCE", "CONTROL", "COUNTER", "COUNTER_ALL", "COUNTER_INSTRUMENTAL",
    "DANCEABLE", "DEVICE", "GENRE", "HA_CONFIG", "HOLD_S", "LEVEL", "VOCALS",
]  # fmt: skip

REPO = Path(__file__).resolve().parents[2]
# The directory's name is the blueprint path prefix in HA_CONFIG (``genre_pi/...``).
BLUEPRINTS = REPO / "homeassistant" / "blueprints" / "automation" / "genre_pi"
DEVICE = "kitchen"
GENRE, CONFIDENCE, LEVEL = (entity_id(DEVICE, key) for key in ("genre", "confidence", "level"))
# The shipped tagger bundle's tag sensors (issue 26).
VOCALS, DANCEABLE = entity_id(DEVICE, "vocals"), entity_id(DEVICE, "danceable", "binary_sensor")
ALL_ENTITIES = (GENRE, CONFIDENCE, LEVEL, VOCALS, DANCEABLE)
COUNTER = "input_number.genre_scene_fired"
# A second automation from the blueprint whose user also typed in the non-genres: it must fire for metal only.
COUNTER_ALL = "input_number.genre_scene_all_fired"
COUNTER_INSTRUMENTAL = "input_number.genre_scene_instrumental_fired"  # the vocals blueprint: classical is instrumental
HOLD_S = 2.0  # the blueprints' hold below
# Fires a second after the blueprint would, for every change of the genre entity: the event that proves a
# "nothing fired" check came late enough.
CONTROL = "automation.genre_hold_control"

HA_CONFIG = f"""\
automation:
  - id: genre_pi_blueprint_test
    alias: Metal scene (genre-pi blueprint)
    use_blueprint:
      path: genre_pi/genre_to_scene.yaml
      input:
        genre_sensor: {GENRE}
        genres: [metal]
        target: script.genre_scene
        hold: {{seconds: {HOLD_S:g}}}
  - id: genre_pi_blueprint_not_music_test
    alias: Scene for metal and the non-genres (genre-pi blueprint)
    use_blueprint:
      path: genre_pi/genre_to_scene.yaml
      input:
        genre_sensor: {GENRE}
        genres: [metal, silence, not_music, uncertain]
        target: script.genre_scene_all
        hold: {{seconds: {HOLD_S:g}}}
  - id: genre_pi_vocals_blueprint_test
    alias: Instrumental scene (genre-pi vocals/danceable blueprint)
    use_blueprint:
      path: genre_pi/vocals_danceable_to_scene.yaml
      input:
        music_sensor: {VOCALS}
        states: [instrumental]
        target: script.genre_scene_instrumental
        hold: {{seconds: {HOLD_S:g}}}
  - id: genre_hold_control
    alias: genre hold control
    triggers:
      - trigger: state
        entity_id: {GENRE}
        to: ~
        for: {{seconds: {HOLD_S + 1:g}}}
    actions:
      - action: input_number.increment
        target: {{entity_id: input_number.genre_hold_control}}
script:
  genre_scene:
    sequence:
      - action: input_number.increment
        target: {{entity_id: {COUNTER}}}
  genre_scene_all:
    sequence:
      - action: input_number.increment
        target: {{entity_id: {COUNTER_ALL}}}
  genre_scene_instrumental:
    sequence:
      - action: input_number.increment
        target: {{entity_id: {COUNTER_INSTRUMENTAL}}}
input_number:
  genre_scene_instrumental_fired:
    min: 0
    max: 1000
    step: 1
  genre_scene_fired:
    min: 0
    max: 1000
    step: 1
  genre_scene_all_fired:
    min: 0
    max: 1000
    step: 1
  genre_hold_control:
    min: 0
    max: 1000
    step: 1
"""
