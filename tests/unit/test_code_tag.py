"""The feature cache key follows the feature code's files, by path and content (trainer.data.code_tag)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import edge
import trainer
from edge.spec import FeatureSpec
from trainer.data.code_tag import code_tag, feature_code_tag, feature_sources
from trainer.data.dataset import Clip, extract_features, file_sha256


def _copy_tree(tmp: Path) -> tuple[Path, Path]:
    """A copy of the real trainer/ and edge/ sources (.py only) to move and edit."""
    dirs = []
    for pkg in (trainer, edge):
        src = Path(pkg.__file__).resolve().parent
        dst = tmp / src.name
        shutil.copytree(src, dst, ignore=lambda d, names: [n for n in names if n == "__pycache__" or
                                                            (not n.endswith(".py") and not Path(d, n).is_dir())])
        dirs.append(dst)
    return dirs[0], dirs[1]


def test_the_key_covers_data_augment_and_edge_feature_code_sorted_by_relative_path() -> None:
    rels = [rel for rel, _ in feature_sources()]
    assert rels == sorted(rels)
    for needed in ("trainer/data/dataset.py", "trainer/data/negatives.py", "trainer/augment/degrade.py",
                   "trainer/augment/rooms.py", "trainer/augment/noises.py", "edge/features.py", "edge/audio.py"):
        assert needed in rels
    assert not [r for r in rels if r.startswith(("trainer/model/", "trainer/runs/", "edge/decide/"))]


def test_a_moved_edited_or_missing_file_changes_or_breaks_the_key(tmp_path: Path) -> None:
    trainer_dir, edge_dir = _copy_tree(tmp_path)
    same = code_tag(feature_sources(trainer_dir, edge_dir))
    assert same == feature_code_tag()
    (trainer_dir / "augment" / "rooms.py").rename(trainer_dir / "augment" / "room_sim.py")
    moved = code_tag(feature_sources(trainer_dir, edge_dir))
    assert moved != same
    with (trainer_dir / "data" / "dataset.py").open("a") as fh:
        fh.write("\n")
    assert code_tag(feature_sources(trainer_dir, edge_dir)) not in (same, moved)
    (edge_dir / "features.py").unlink()
    with pytest.raises(FileNotFoundError, match=r"features\.py"):
        feature_sources(trainer_dir, edge_dir)


def test_every_cached_variant_carries_the_code_tag(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "blues.00000.wav"
    sf.write(path, 0.1 * rng.standard_normal(22050 * 4).astype(np.float32), 22050)
    clip = Clip("blues.00000", "blues", path, file_sha256(path))
    spec = FeatureSpec(labels=("blues", "jazz"))
    store = extract_features([clip], spec, ["clean"], cache_dir=tmp_path / "cache", workers=1, progress=False)
    assert store.computed == 1 and store.get(clip.clip_id).shape[0] >= 126
    names = [p.name for p in (tmp_path / "cache").rglob("*.npy")]
    assert names and all(f"-{feature_code_tag()}" in n for n in names), names
