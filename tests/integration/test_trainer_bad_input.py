"""genre-train on input it cannot use: one clear error (usage 2, data 65) before any work, or a bad file skipped
and reported."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.support.trainer_cli import run_trainer as _run

REPO = Path(__file__).resolve().parents[2]
GTZAN = REPO.parent / "shared" / "gtzan"

pytestmark = pytest.mark.skipif(not (GTZAN / "manifest.csv").is_file(), reason=f"GTZAN subset not found at {GTZAN}")


def test_empty_folder_is_a_clear_data_error(tmp_path: Path) -> None:
    (tmp_path / "data" / "blues").mkdir(parents=True)
    proc = _run(["train", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "o"),
                 "--cache-dir", str(tmp_path / "c")], cwd=tmp_path, timeout=60)
    assert proc.returncode == 65, proc.stderr
    assert "no audio found" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_folder_is_a_usage_error(tmp_path: Path) -> None:
    proc = _run(["train", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o")], cwd=tmp_path, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "does not exist" in proc.stderr


def test_a_bad_l2_sweep_value_is_one_usage_error_before_any_work(tmp_path: Path) -> None:
    proc = _run(["compare", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o"), "--tagger-c", "0.01",
                 "0"], cwd=tmp_path, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "genre-train: error: --tagger-c 0: C must be in (0, 1e6)"
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(("command", "hop"), [("stream", "4"), ("stream", "0"), ("train", "0")])
def test_a_tagger_hop_the_daemon_refuses_is_one_usage_error_before_any_work(tmp_path: Path, command: str,
                                                                            hop: str) -> None:
    recipe = ["--recipe", "tagger"] if command == "train" else []
    proc = _run([command, "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o"), *recipe, "--set",
                 f"hop_s={hop}"], cwd=tmp_path, timeout=60)
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"genre-train: error: --set hop_s={hop}: invalid feature spec: hop_s must be in (0, "), last
    assert not (tmp_path / "o").exists()


def test_one_genre_is_a_clear_data_error(tmp_path: Path) -> None:
    data = tmp_path / "genres_original" / "blues"
    data.mkdir(parents=True)
    for i in range(3):
        shutil.copy(GTZAN / "blues" / f"blues.0000{i}.ogg", data / f"blues.0000{i}.ogg")
    proc = _run(["train", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--cache-dir", str(tmp_path / "c")],
                cwd=tmp_path, timeout=60)
    assert proc.returncode == 65, proc.stderr
    assert "only one genre (blues)" in proc.stderr


@pytest.mark.slow
def test_corrupt_file_is_skipped_and_reported(tmp_path: Path) -> None:
    data = tmp_path / "genres"
    for genre in ("blues", "metal"):
        (data / genre).mkdir(parents=True)
        for i in range(3):
            shutil.copy(GTZAN / genre / f"{genre}.0000{i}.ogg", data / genre / f"{genre}.0000{i}.ogg")
    (data / "metal" / "metal.00054.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")  # like GTZAN jazz.00054
    (data / "blues" / "blues.00009.wav").write_bytes(b"")
    proc = _run(["train", "--no-degrade", "--recipe", "default", "--data", str(data), "--out", str(tmp_path / "o"),
                 "--cache-dir", str(tmp_path / "c"), "--epochs", "1", "--workers", "1"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "metal.00054" in proc.stderr  # the warning names the file
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    skipped = {s["clip_id"] for s in report["data"]["skipped"]}
    assert {"metal.00054", "blues.00009"} <= skipped
    assert report["data"]["skipped_count"] == len(skipped)
    assert "metal.00054" in (tmp_path / "o" / "report.md").read_text()
