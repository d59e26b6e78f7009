"""The FeatureSpec contract: derived sizes, JSON round trip, and one clear error per bad field."""

from __future__ import annotations

import json
from typing import Any

import pytest

from edge.errors import SpecError
from edge.spec import SPEC_VERSION, FeatureSpec

LABELS = ("blues", "jazz", "rock")


def test_default_window_is_126_frames_of_13_mfcc_on_a_512_sample_grid() -> None:
    spec = FeatureSpec(labels=LABELS)
    assert spec.window_samples == 66150
    assert spec.frames_per_window == 126
    assert spec.window_span_samples == 66048
    assert spec.hop_frames == 43  # 1.0 s rounded to the 512-sample frame grid
    assert spec.input_shape == (126, 13)


def test_json_round_trip_preserves_every_field() -> None:
    spec = FeatureSpec(labels=LABELS, cmn=True, cvn=True, mel_floor_db=45.0, mean=tuple(float(i) for i in range(13)),
                       std=(2.0,) * 13)
    again = FeatureSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"labels": ("only",)}, "at least 2 labels"),
        ({"labels": ("a", "a")}, "unique"),
        ({"hop_s": 0.0}, "hop_s"),
        ({"hop_s": 4.0}, "hop_s"),
        ({"win_length": 4096}, "truncate"),
        ({"n_mfcc": 40}, "n_mfcc"),
        ({"winfunc": "kaiser"}, "winfunc"),
        ({"preemph": 1.5}, "preemph"),
        ({"mean": (0.0,) * 12, "std": (1.0,) * 12}, "expected n_mfcc"),
        ({"mean": (0.0,) * 13}, "both be set"),
        ({"mean": (0.0,) * 13, "std": (0.0,) * 13}, "std values must be > 0"),
        ({"high_hz": 20000.0}, "high_hz"),
        ({"sample_rate": 100}, "sample_rate"),
    ],
)
def test_invalid_spec_names_the_problem(changes: dict[str, Any], needle: str) -> None:
    base: dict[str, Any] = {"labels": LABELS}
    base.update(changes)
    with pytest.raises(SpecError, match=needle):
        FeatureSpec(**base)


@pytest.mark.parametrize(
    ("doc", "needle"),
    [
        ({"labels": list(LABELS), "colour": "red"}, "unknown feature spec keys: colour"),
        ({"labels": list(LABELS), "n_mfcc": "13"}, "n_mfcc must be an integer"),
        ({"labels": list(LABELS), "cmn": 1}, "cmn must be true or false"),
        ({"labels": list(LABELS), "cvn": "yes"}, "cvn must be true or false"),
        ({"labels": list(LABELS), "mel_floor_db": "40"}, "mel_floor_db must be a number"),
        ({"labels": list(LABELS), "mel_floor_db": -3}, "mel_floor_db must be in"),
        ({"labels": list(LABELS), "spec_version": SPEC_VERSION + 1}, "newer than this software"),
        ({"labels": "blues"}, "labels must be a list"),
        ({"n_mfcc": 13}, "no 'labels'"),
        ({"labels": list(LABELS), "mean": ["x"] * 13, "std": [1] * 13}, "mean must be a list of numbers"),
        ([1, 2], "must be a JSON object"),
    ],
)
def test_from_dict_rejects_bad_json(doc: Any, needle: str) -> None:
    with pytest.raises(SpecError, match=needle):
        FeatureSpec.from_dict(doc)
