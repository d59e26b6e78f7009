"""genre-train ablate: typed --set parsing with one clear error, the paired loss, and the report table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge.errors import UsageError
from trainer.model.recipes import DEFAULT
from trainer.report.render import update_report
from trainer.runs.ablate import parse_settings, summarize


def test_settings_are_typed_from_the_recipe_fields() -> None:
    got = parse_settings(["cvn=true", "aug_copies=8", "high_hz=5500", "mixup_alpha=0", "spec_augment=no"], DEFAULT)
    assert got == {"cvn": True, "aug_copies": 8, "high_hz": 5500.0, "mixup_alpha": 0.0, "spec_augment": False}
    assert type(got["aug_copies"]) is int and type(got["high_hz"]) is float
    assert parse_settings(["high_hz=none"], DEFAULT) == {"high_hz": None}
    assert parse_settings([], DEFAULT) == {}


@pytest.mark.parametrize(("pair", "needle"), [
    ("cvn", "expected KEY=VALUE"),
    ("colour=blue", "expected KEY=VALUE"),
    ("name=x", "expected KEY=VALUE"),
    ("aug_copies=many", "not a valid int"),
    ("cvn=maybe", "not a valid bool"),
    ("width=none", "not a valid int"),
])  # fmt: skip
def test_a_bad_setting_is_one_clear_usage_error(pair: str, needle: str) -> None:
    with pytest.raises(UsageError, match=needle):
        parse_settings([pair], DEFAULT)


def test_the_loss_is_paired_per_fold_and_lands_in_the_report(tmp_path: Path) -> None:
    # Fold 2 is hard clean and in the room alike: a paired loss sees 0.05 each time, unpaired means would not.
    row = summarize([0.9, 0.8, 0.5], [0.85, 0.75, 0.45], "typical", {"cvn": True})
    assert row["loss"]["mean"] == pytest.approx(0.05) and row["loss"]["std"] == pytest.approx(0.0, abs=1e-12)
    assert row["typical"]["mean"] == pytest.approx(0.6833333, abs=1e-6) and row["folds"] == 3
    (tmp_path / "report.json").write_text(json.dumps({"cv": {"folds": 3, "command": "x", "seconds": 60}}))
    update_report(tmp_path, {"ablations": {"cvn": row}}, merge=("ablations",))
    md = (tmp_path / "report.md").read_text()
    assert "| cvn | cvn=True | 3 | 73.3 ± 17.0 | typical | 68.3 ± 17.0 | 5.0 ± 0.0 |" in md, md
    assert json.loads((tmp_path / "report.json").read_text())["cv"]["folds"] == 3  # other sections kept
    update_report(tmp_path, {"ablations": {"none": summarize([0.9], [0.8], "typical", {})}}, merge=("ablations",))
    assert list(json.loads((tmp_path / "report.json").read_text())["ablations"]) == ["cvn", "none"]  # rows add up
