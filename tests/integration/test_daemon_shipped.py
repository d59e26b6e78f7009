"""The daemon with the shipped model on held-out real music: it discriminates genres end to end."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from edge.audio import load_audio
from tests.integration.conftest import DaemonProc
from tests.support.audio import espeak_available, write_speech_wav, write_wav
from tests.support.mqtt_client import MqttProbe

# Held out from training in the shipped model's split.json (clip-level accuracy there is the trainer's
# business; this checks the daemon's streaming path gives the model what it was trained on).
CLIPS = ("metal/metal.00004.ogg", "classical/classical.00005.ogg", "reggae/reggae.00003.ogg")


def test_shipped_model_names_the_genre_of_held_out_clips(
    shipped_bundle: Path,
    gtzan_dir: Path,
    daemon: Callable[..., DaemonProc],
    mqtt_probe: Callable[..., MqttProbe],
) -> None:
    version = json.loads((shipped_bundle / "model.json").read_text())["model"]["version"]
    verdicts = {}
    for i, rel in enumerate(CLIPS):
        clip = gtzan_dir / rel
        if not clip.is_file():
            pytest.skip(f"{clip} missing")
        probe = mqtt_probe("#")
        # Paced, not --speed 0: the outbox sends only the newest state, so at full speed the states that reach the
        # broker are a sample set by how fast this machine is (one, if the clip ends before the first connect).
        d = daemon(clip, model=shipped_bundle, device_id=f"clip{i}", extra=["--speed", "10", "--hop", "1"])
        d.finish(probe, timeout=60)
        states = [json.loads(m.payload) for m in probe.received(d.topic("state"))]
        assert states and all(s["model"] == version for s in states)
        # The genre the daemon reported for most of the clip.
        verdicts[rel.split("/")[0]] = Counter(s["genre"] for s in states).most_common(1)[0][0]
    right = [true for true, said in verdicts.items() if true == said]
    assert len(set(verdicts.values())) > 1, f"every clip got the same genre: {verdicts}"
    assert len(right) >= 2, f"daemon verdicts {verdicts}"


def test_shipped_model_publishes_vocals_and_danceable_per_song_and_none_for_talk(
    shipped_bundle: Path,
    gtzan_dir: Path,
    tmp_path: Path,
    daemon: Callable[..., DaemonProc],
    mqtt_probe: Callable[..., MqttProbe],
) -> None:
    """Held-out classical (no voice, not for dancing), then speech, then held-out disco: the tag topics follow the
    music and say ``none`` for the talk between, each published only when it changes."""
    if not espeak_available():
        pytest.skip("espeak-ng missing: apt-get install espeak-ng")
    rate = 16000
    for rel in ("classical/classical.00011.ogg", "disco/disco.00007.ogg"):
        if not (gtzan_dir / rel).is_file():
            pytest.skip(f"{gtzan_dir / rel} missing")
    speech = load_audio(write_speech_wav(tmp_path / "talk.wav", "the news at six, and now the weather for the "
                                         "weekend, with rain in the north and sun in the south, " * 3), rate)
    parts = [load_audio(gtzan_dir / "classical/classical.00011.ogg", rate)[: 25 * rate],
             np.resize(speech, 20 * rate) * 2.0, load_audio(gtzan_dir / "disco/disco.00007.ogg", rate)[: 25 * rate]]
    audio = write_wav(tmp_path / "classical_talk_disco.wav", np.clip(np.concatenate(parts), -1, 1), rate)
    probe = mqtt_probe("#")
    d = daemon(audio, model=shipped_bundle, device_id="tags", extra=["--speed", "10"])
    d.finish(probe, timeout=90)
    vocals = [m.text for m in probe.received(d.topic("vocals"))]
    dance = [m.text for m in probe.received(d.topic("danceable"))]
    states = [json.loads(m.payload) for m in probe.received(d.topic("state"))]
    assert "sensors" in states[-1] and set(states[-1]["sensors"]) == {"vocals", "danceable"}
    # On change only: no repeats in a row (the broker keeps the last one retained).
    assert all(a != b for a, b in itertools.pairwise(vocals)), vocals
    assert all(a != b for a, b in itertools.pairwise(dance)), dance
    assert "instrumental" in vocals and vocals.index("instrumental") < len(vocals) - 1, vocals
    assert "none" in vocals[vocals.index("instrumental") + 1 :], f"talk did not reset the vocals sensor: {vocals}"
    assert dance[-1] == "danceable", dance
    diag = [json.loads(m.payload) for m in probe.received(d.topic("diagnostics"))]
    assert diag and len(diag[0]["tags"]) == 5 and {"tag", "p"} <= set(diag[0]["tags"][0])
