"""The gated head: a clean expert and a room expert mixed by a gate that hears how degraded a window is."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pytest

from edge.errors import UsageError
from edge.spec import musicnn_spec
from trainer.model.recipes import get_recipe
from trainer.runs.ablate import parse_settings
from trainer.tagger.embed import WindowEmbeddings
from trainer.tagger.export import N_TAGS
from trainer.tagger.fit import TaggerData, embedding_of, evaluate
from trainer.tagger.heads import fit_head
from trainer.tagger.mixture import GatedHead, head_size
from trainer.teacher.head import LinearHead

LABELS = ("blues", "jazz", "not_music")
DIM = 12
ROOM_DIM = DIM - 1  # where a copy differs from its clean windows


@dataclass(frozen=True)
class _Clip:
    clip_id: str


def _data(n: int = 18, seed: int = 0) -> TaggerData:
    """Clips whose class shows in the first dimensions; every copy also moves the last one (the 'room')."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % len(LABELS)
    rows = {}
    for i in range(n):
        for variant in ("clean", "aug/0", "noise/0", "eval/typical"):
            emb = rng.normal(size=(6, DIM)).astype(np.float32)
            emb[:, y[i]] += 3.0
            if variant != "clean":
                emb[:, ROOM_DIM] += 10.0
            rows[(f"c{i}", variant)] = np.hstack([np.zeros((6, N_TAGS), np.float32), emb])
    return TaggerData([_Clip(f"c{i}") for i in range(n)], LABELS, y.astype(np.int64),
                      WindowEmbeddings(rows, 0, len(rows), {}), musicnn_spec(LABELS))


def _linear(rng: np.random.Generator, classes: int) -> LinearHead:
    return LinearHead(rng.normal(size=(DIM, classes)).astype(np.float32), rng.normal(size=classes).astype(np.float32))


def test_the_gated_head_is_the_gate_weighted_mixture_of_its_experts() -> None:
    rng = np.random.default_rng(0)
    head = GatedHead(_linear(rng, 3), _linear(rng, 3), _linear(rng, 2))
    x = rng.normal(size=(40, DIM)).astype(np.float32) * 2
    g = head.gate.predict(x)[:, 1:2]
    want = g * head.clean.predict(x) + (1 - g) * head.room.predict(x)
    got = head.predict(x)
    assert np.abs(got - want).max() < 1e-6 and np.allclose(got.sum(axis=1), 1.0, atol=1e-5)
    assert ((g > 0.01) & (g < 0.99)).any()  # the check mixes, not only picks
    sure = dataclasses.replace(head, gate=LinearHead(np.zeros((DIM, 2), np.float32), np.array([0, 40], np.float32)))
    assert np.abs(sure.predict(x) - head.clean.predict(x)).max() < 1e-6  # a gate sure of clean: the clean expert
    assert head_size(head) == 2 * (DIM * 3 + 3) + DIM * 2 + 2 and head_size(head.room) == DIM * 3 + 3


def test_the_gate_hears_the_copies_and_the_head_mixes_on_it() -> None:
    data = _data()
    idx = np.arange(12)
    head = fit_head(get_recipe("tagger"), data, idx, ("aug/0", "noise/0"), seed=0)
    assert isinstance(head, GatedHead)
    test = np.arange(12, 18)
    clean = np.concatenate([embedding_of(data.emb.get(f"c{i}", "clean")) for i in test])
    room = np.concatenate([embedding_of(data.emb.get(f"c{i}", "eval/typical")) for i in test])
    g_clean, g_room = head.clean_weight(clean), head.clean_weight(room)
    assert g_clean.mean() > 0.5 > g_room.mean() and g_clean.min() > g_room.max()  # soft (its L2), but never wrong
    scores = evaluate(head, data, test, ("clean", "typical"))
    assert scores["clean"].clip_accuracy == 1.0 and scores["typical"].clip_accuracy == 1.0


def test_one_head_without_a_clean_expert_or_without_copies_to_learn_the_gate_from() -> None:
    data = _data()
    idx = np.arange(12)
    assert isinstance(fit_head(get_recipe("tagger_room"), data, idx, ("aug/0",), seed=0), LinearHead)
    assert isinstance(fit_head(get_recipe("tagger"), data, idx, (), seed=0), LinearHead)


def test_the_gated_head_never_reads_a_test_clip() -> None:
    data = _data()
    test = np.arange(12, 18)
    for i in test:  # anything read from a test clip's training copies would poison one of the three fits
        for variant in ("clean", "aug/0", "noise/0"):
            data.emb.rows[(f"c{i}", variant)] = np.full_like(data.emb.rows[(f"c{i}", variant)], np.nan)
    head = fit_head(get_recipe("tagger"), data, np.arange(12), ("aug/0", "noise/0"), seed=0)
    assert isinstance(head, GatedHead)
    assert all(np.isfinite(h.weight).all() and np.isfinite(h.bias).all() for h in (head.clean, head.room, head.gate))


def test_a_clean_expert_strength_is_checked_before_any_work() -> None:
    recipe = get_recipe("tagger")
    assert parse_settings(["clean_expert_c=none"], recipe) == {"clean_expert_c": None}
    assert parse_settings(["clean_expert_c=0.02"], recipe) == {"clean_expert_c": 0.02}
    for bad in ("clean_expert_c=0", "head_c=-1"):
        with pytest.raises(UsageError, match="must be in"):
            parse_settings([bad], recipe)
