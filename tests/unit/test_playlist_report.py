"""The playlist report sections: report.json keys as issue 11 names them, and the report.md table."""

from __future__ import annotations

from typing import Any

import pytest

from trainer.evaluate.stream_metrics import METRIC_KEYS
from trainer.report.playlist_report import cv_sections, md_lines

CONDITIONS = ("clean", "mild", "typical", "harsh")


def _fold(fold: int, acc: float) -> dict[str, Any]:
    flat = dict.fromkeys(METRIC_KEYS, 0.5) | {"settled_accuracy": acc, "switch_latency_s.median": 4.0 + fold}
    return {"fold": fold, "tuned": {"rule": "hmm", "temperature": 2.0, "switch_per_hop": 0.01,
                                    "min_confidence": 0.5, "hysteresis_windows": 2},
            "metrics": {c: flat for c in CONDITIONS},
            "baseline": {c: dict(flat, settled_accuracy=0.3) for c in CONDITIONS},
            "tuning": {}, "counts": {}, "seconds": {}, "timeline": [{"states": ["jazz"]}]}


def test_cv_sections_have_every_key_under_every_condition_as_mean_and_std() -> None:
    doc = cv_sections([_fold(0, 0.8), _fold(1, 0.9), {}])
    for section in ("playlist_cv", "playlist_cv_baseline"):
        assert set(doc[section]) == set(CONDITIONS)
        typical = doc[section]["typical"]
        assert set(typical) == {"time_accuracy", "settled_accuracy", "changes_per_min", "within_song_changes_per_min",
                                "switch_latency_s", "unknown_share_music", "genre_share_not_music"}
        assert set(typical["switch_latency_s"]) == {"median", "p90"}
    assert doc["playlist_cv"]["typical"]["settled_accuracy"]["mean"] == pytest.approx(0.85)
    assert doc["playlist_cv"]["typical"]["settled_accuracy"]["std"] == pytest.approx(0.05)
    assert doc["playlist_cv"]["clean"]["switch_latency_s"]["median"]["mean"] == pytest.approx(4.5)
    assert all("timeline" not in f for f in doc["playlist_cv_folds"])  # the PNGs carry it, not report.json
    nan_fold = _fold(0, 0.8)
    nan_fold["metrics"]["clean"] = dict(nan_fold["metrics"]["clean"], genre_share_not_music=float("nan"))
    assert cv_sections([nan_fold])["playlist_cv"]["clean"]["genre_share_not_music"]["mean"] is None  # strict JSON
    assert cv_sections([{}, {}]) == {}


def test_md_lines_table_puts_tuned_and_baseline_side_by_side() -> None:
    lines = md_lines(cv_sections([_fold(0, 0.8), _fold(1, 0.9)]))
    rows = [line for line in lines if line.startswith("| typical |")]
    assert [r.split("|")[2].strip() for r in rows] == ["tuned", "baseline"]
    assert "85.0 ± 5.0" in rows[0] and "30.0 ± 0.0" in rows[1]
    assert any("fold 1: T=2.0" in line for line in lines)
    assert md_lines({}) == []


def test_the_tag_sensors_steadiness_and_proxy_accuracy_are_summed_over_folds_and_tabled() -> None:
    folds = [{**_fold(f, 0.8), "sensors": {"typical": {"vocals": 0.1 + 0.2 * f}},
              "sensor_accuracy": {"typical": {"vocals": 0.9 + 0.05 * f}}} for f in (0, 1)]
    doc = cv_sections(folds)
    assert doc["playlist_cv_sensors"]["typical"]["vocals"]["mean"] == pytest.approx(0.2)
    assert doc["playlist_cv_sensors_accuracy"]["typical"]["vocals"]["mean"] == pytest.approx(0.925)
    rows = [line for line in md_lines(doc) if line.startswith("| typical |") and line.count("|") == 3]
    assert rows == ["| typical | 0.20 ± 0.10 |", "| typical | 92.5 ± 2.5 |"]
