"""report.md renders the artist protocol: the clip-split column, the fault-filtered table, thin genres flagged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from trainer.report.render import PUBLISHED_FAULT_FILTERED, render_md, update_report


def _stat(m: float) -> dict[str, Any]:
    return {"mean": m, "std": 0.01, "n": 2, "values": [m, m]}


def _recipe(macro: float, support: dict[str, int]) -> dict[str, Any]:
    per = {g: {"precision": 0.5, "recall": 0.25, "f1": 0.33, "support": n} for g, n in support.items()}
    return {"segment_accuracy": _stat(0.5), "segment_macro_accuracy": _stat(0.5), "clip_accuracy": _stat(0.6),
            "clip_macro_accuracy": _stat(macro), "params": 43000, "train_seconds": _stat(100.0), "leaky": False,
            "per_genre_clip": per, "thin_genres": [g for g, n in support.items() if n < 20]}


def test_artist_headline_with_clip_column_and_fault_filtered_table() -> None:
    support = {"blues": 100, "reggae": 19}
    ff = {"genres": ["blues", "pop"], "recipes": {"default_clip_split": _recipe(0.7, {"blues": 31, "pop": 30})},
          "train_clips": 123, "test_clips": 61, "published_10_genre": PUBLISHED_FAULT_FILTERED,
          "caveat": "2 genres, not 10"}
    doc = {"protocol": "artist", "recipes": {"default_clip_split": _recipe(0.71, support),
                                             "velardo_clip_split": _recipe(0.41, support)},
           "recipes_by_clip": {"default_clip_split": _recipe(0.83, support)}, "fault_filtered": ff,
           "cv": {"folds": 5, "command": "genre-train compare", "seconds": 60, "fold_sizes": [1, 1],
                  "genre_per_fold": {"blues": [50, 50], "reggae": [15, 4]}}}
    md = render_md(doc)
    assert "5-fold CV by artist" in md
    row = "| default | by artist | 50.0 ± 1.0 | 50.0 ± 1.0 | 60.0 ± 1.0 | 71.0 ± 1.0 | 43,000 | 100 | 83.0 ± 1.0 |"
    assert row in md
    assert "| Velardo | by artist |" in md and md.count("not run") == 1  # velardo has no clip column here
    assert "| reggae | 19 ⚠ |" in md and "| blues | 100 |" in md  # thin genre flagged with its count
    assert "## Fault-filtered split, 2 genres (blues, pop)" in md
    assert "| default (ours) | 2 | 60.0 ± 1.0 | 70.0 ± 1.0 |" in md and "| Jukebox (published) | 10 | 79.7 | – |" in md
    assert "**Caveat:** 2 genres, not 10." in md
    assert "| reggae | 15 | 4 |" in md  # test clips per genre and fold


def test_a_folder_without_artists_says_clip() -> None:
    doc = {"protocol": "clip", "recipes": {"default_clip_split": _recipe(0.8, {"a": 30})},
           "cv": {"folds": 2, "command": "x", "seconds": 1}}
    md = render_md(doc)
    assert "by clip (the data folder has no artist metadata" in md and "folds by clip |" not in md


def test_recipe_definitions_add_up_across_the_commands_writing_one_report(tmp_path: Path) -> None:
    # compare defines the recipes it compares, train the one it ships: neither may drop the other's.
    update_report(tmp_path, {"recipe_definitions": {"velardo": {"notes": "seed"}, "tagger": {"notes": "old"}}})
    doc = update_report(tmp_path, {"recipe_definitions": {"tagger": {"notes": "ships"}}})
    assert doc["recipe_definitions"] == {"velardo": {"notes": "seed"}, "tagger": {"notes": "ships"}}
    assert json.loads((tmp_path / "report.json").read_text())["recipe_definitions"] == doc["recipe_definitions"]
