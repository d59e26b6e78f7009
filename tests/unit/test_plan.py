"""The run plan and artist groups: one split made once, the feature copies that follow from it, groups kept whole."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from trainer.data.groups import ArtistMeta, artist_groups, complete_genres, read_artist_meta, read_fault_filtered
from trainer.data.plan import ARTIST, CLIP, CORE, FAULT_FILTERED, HOLDOUT, RunPlan, cv_plan, train_plan
from trainer.data.split import grouped_folds, grouped_holdout

GTZAN = Path(__file__).resolve().parents[3] / "shared" / "gtzan"


def test_groups_join_artists_foleis_groups_and_repeats() -> None:
    ids = ["a.1", "a.2", "a.3", "b.1", "b.2", "b.3", "c.1"]
    meta = ArtistMeta(artist={"a.1": "Bob Marley", "a.2": "bob  MARLEY", "b.1": "X"},
                      foleis={"a.3": "7", "b.2": "7", "b.3": "9"}, repeats=[("b.1", "b.3"), ("c.1", "zz.9")])
    groups = artist_groups(ids, meta)
    assert groups[0] == groups[1]  # one artist, spelled two ways
    assert groups[2] == groups[4]  # one Foleis group
    assert groups[3] == groups[5]  # a repeat pair
    assert len(set(groups)) == 4 and groups[6] == "c.1"  # a link to an absent clip is ignored
    assert artist_groups(ids, ArtistMeta({}, {}, [])) == ids  # no metadata: every clip alone


def test_grouped_folds_keep_groups_whole_and_stratify_what_they_can() -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), [100, 100, 15, 15])
    groups = [f"g{y}-{rng.integers(0, 12 if y < 2 else 4)}" for y in labels]
    folds = grouped_folds(labels, groups, 5, seed=0)
    for g in set(groups):
        assert len({int(f) for f, gg in zip(folds, groups, strict=True) if gg == g}) == 1
    for cls in (0, 1):  # big classes of many groups come out within a group's size of even
        counts = np.bincount(folds[labels == cls], minlength=5)
        assert counts.max() - counts.min() <= max(Counter(g for g, y in zip(groups, labels, strict=True)
                                                          if y == cls).values()), counts
    assert np.array_equal(folds, grouped_folds(labels, groups, 5, seed=0))
    singles = grouped_folds(labels, [str(i) for i in range(labels.size)], 5, seed=1)
    for cls in range(4):  # one clip per group: as even as a plain stratified deal
        counts = np.bincount(singles[labels == cls], minlength=5)
        assert counts.max() - counts.min() <= 1, counts
    with pytest.raises(ValueError, match="groups into 5 folds"):
        grouped_folds([0, 1, 0, 1], ["a", "a", "b", "b"], 5, 0)


def test_grouped_holdout_scores_every_genre_with_two_groups() -> None:
    labels = np.array([0] * 10 + [1] * 6 + [2] * 3)
    groups = [f"a{i // 2}" for i in range(10)] + ["b0"] * 5 + ["b1"] + ["c"] * 3
    parts = grouped_holdout(labels, groups, 0.2, seed=0)
    assert parts[:10].sum() == 2 and parts[10:16].tolist() == [0] * 5 + [1]  # the smallest group of b
    assert parts[16:].sum() == 0  # a genre of one artist stays in training
    for g in set(groups):
        assert len({int(p) for p, gg in zip(parts, groups, strict=True) if gg == g}) == 1


def test_train_plan_gives_room_copies_to_training_clips_and_rooms_to_test_clips(tmp_path: Path) -> None:
    ids = [f"{g}.{i:05d}" for g in ("blues", "jazz") for i in range(5)]
    genres = [i.split(".")[0] for i in ids]
    plan = train_plan(ids, genres, ids, CLIP, test_fraction=0.2, seed=3, train_copies=["aug/0", "aug/1"],
                      test_copies=["eval/mild"], skipped=[{"clip_id": "jazz.00054", "path": "x", "reason": "bad"}])
    split = plan.split(HOLDOUT)
    train, test = split.indices(ids, 1)
    assert len(test) == 2 and {genres[i] for i in test} == {"blues", "jazz"}
    for i in train:
        assert plan.variants[ids[i]] == ("clean", "aug/0", "aug/1")
    for i in test:
        assert plan.variants[ids[i]] == ("clean", "eval/mild")
    plan.save(tmp_path)
    again = RunPlan.load(tmp_path / "split.json")
    assert again == plan and again.skipped[0]["clip_id"] == "jazz.00054"


def test_cv_plan_has_every_split_and_gives_all_copies_to_fold_clips() -> None:
    ids = [f"{g}.{i:05d}" for g in ("blues", "jazz", "rock") for i in range(10)]
    genres = [i.split(".")[0] for i in ids]
    groups = [f"{g}-{int(i.split('.')[1]) // 2}" for i, g in zip(ids, genres, strict=True)]
    ff = {"train": ["blues.00000", "jazz.00000", "jazz.00001"], "valid": ["blues.00001"],
          "test": ["blues.00002", "jazz.00002", "rock.00000"]}
    plan = cv_plan(ids, genres, groups, ARTIST, n_folds=2, seed=0, train_copies=["aug/0"], test_copies=["eval/x"],
                   fault_filtered=ff, fault_genres=["blues", "jazz"], core=[int(i[-1]) < 4 for i in ids])
    assert set(plan.splits) == {ARTIST, CLIP, FAULT_FILTERED, CORE}
    assert all(v == ("clean", "aug/0", "eval/x") for v in plan.variants.values())
    tr, te = plan.split(FAULT_FILTERED).indices(ids, 1)
    assert [ids[i] for i in te] == ["blues.00002", "jazz.00002"] and len(tr) == 4  # rock is not a chosen genre
    art = plan.split(ARTIST)
    for g in set(groups):
        assert len({art.part[c] for c, gg in zip(ids, groups, strict=True) if gg == g}) == 1


def test_a_split_across_a_group_is_refused() -> None:
    from trainer.data.plan import folds_split, make_plan

    bad = folds_split(ARTIST, ARTIST, ["a", "b"], [0, 1], 2)
    with pytest.raises(ValueError, match="two sides"):
        make_plan(["a", "b"], ["x", "x"], ["g", "g"], [bad], seed=0, protocol=ARTIST, train_copies=[],
                  test_copies=[])


@pytest.mark.skipif(not (GTZAN / "manifest.csv").is_file(), reason=f"GTZAN subset not found at {GTZAN}")
def test_the_shared_subset_folds_by_artist() -> None:
    import csv

    rows = list(csv.DictReader((GTZAN / "manifest.csv").open()))
    ids, genres = [r["gtzan_id"] for r in rows], [r["genre"] for r in rows]
    groups = artist_groups(ids, read_artist_meta(GTZAN))
    by = dict(zip(ids, groups, strict=True))
    assert by["blues.00000"] == by["blues.00011"]  # John Lee Hooker
    assert by["jazz.00033"] == by["jazz.00051"]  # a replica pair
    lists = read_fault_filtered(GTZAN)
    assert lists is not None
    assert complete_genres(lists, ids)[0] == ["blues", "classical", "jazz", "pop"]
    plan = cv_plan(ids, genres, groups, ARTIST, n_folds=5, seed=0, train_copies=[], test_copies=[])
    part = plan.split(ARTIST).part
    for genre in ("blues", "classical", "jazz", "pop"):  # the big genres land 15-28 clips a fold
        counts = Counter(part[i] for i, g in zip(ids, genres, strict=True) if g == genre)
        assert sorted(counts) == list(range(5)) and min(counts.values()) >= 15, (genre, counts)
