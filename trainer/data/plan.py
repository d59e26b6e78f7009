"""The run plan: which clip is on which side of which split, and which feature copies each clip needs.

Made once per run, after decoding failures are known (over the decodable clips only), written to the
output as ``split.json``, and read by feature extraction (which copies to compute), fitting and
shipping (which clips train, which are scored). Before this module the CLI and ``ship`` each split
the clips, one before and one after undecodable files were dropped; the two splits disagreed and a
training clip's room copies were never computed (issue 12).

Feature copies ("variants") of a clip are named here and nowhere else:
``clean`` (the file as is), ``eval/<severity>`` (an evaluation room, only for clips that are scored)
and ``aug/<k>`` (the k-th training room copy, only for clips that are trained on), ``noise/<k>`` (the k-th
wide-noise training copy). ``trainer.data.variants`` turns each name into audio.

A split maps every clip id to a part number: for ``folds`` the fold (0..n-1; fold f is tested while
the others train), for ``holdout`` 0 = train and 1 = test. ``-1`` means the clip takes no part (the
fault-filtered split leaves most genres out). Pure: no I/O except ``save``/``load``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from trainer.data.split import grouped_folds, grouped_holdout, holdout_parts, stratified_folds

CLEAN = "clean"
HOLDOUT = "holdout"  # the shipped model's split
CLIP = "clip"
ARTIST = "artist"
FAULT_FILTERED = "fault_filtered"
CORE = "core"
PLAN_FILE = "split.json"
PLAN_VERSION = 2
IntArray = npt.NDArray[np.int64]


def eval_variant(severity: str) -> str:
    return f"eval/{severity}"


def aug_variant(k: int) -> str:
    return f"aug/{k}"


def eval_variants(severities: Sequence[str]) -> list[str]:
    """The copies a scored clip needs besides ``clean``: one per evaluation room."""
    return [eval_variant(s) for s in severities]


def aug_variants(copies: int, severities: Sequence[str], noise_copies: int = 0, reverb_copies: int = 0) -> list[str]:
    """The room copies (``aug/k``), wide-noise copies (``noise/k``) and FDN reverberation copies (``reverb/k``) a
    training clip needs besides ``clean``; none when the room chain is off."""
    if not severities:
        return []
    return ([aug_variant(k) for k in range(copies)] + [f"noise/{k}" for k in range(noise_copies)]
            + [f"reverb/{k}" for k in range(reverb_copies)])


@dataclass(frozen=True)
class Split:
    """One way of splitting the clips: ``part[clip_id]`` as described in the module docstring."""

    name: str
    kind: str  # "folds" | "holdout"
    by: str  # "artist" | "clip" | "fault_filtered"
    part: Mapping[str, int]
    n_folds: int = 2
    genres: tuple[str, ...] = ()  # only these genres take part (empty: all)
    notes: Mapping[str, Any] = field(default_factory=dict)

    @property
    def folds(self) -> list[int]:
        """The test parts to run: every fold, or just part 1 of a holdout."""
        return list(range(self.n_folds)) if self.kind == "folds" else [1]

    def indices(self, clip_ids: Sequence[str], fold: int) -> tuple[IntArray, IntArray]:
        """(train, test) positions in ``clip_ids`` when ``fold`` is tested; clips with part -1 in neither."""
        part = np.array([self.part.get(c, -1) for c in clip_ids], dtype=np.int64)
        return np.flatnonzero((part >= 0) & (part != fold)), np.flatnonzero(part == fold)

    def trains(self, clip_id: str) -> bool:
        p = self.part.get(clip_id, -1)
        return p >= 0 and (self.kind == "folds" or p == 0)

    def tests(self, clip_id: str) -> bool:
        p = self.part.get(clip_id, -1)
        return p >= 0 and (self.kind == "folds" or p == 1)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "by": self.by, "n_folds": self.n_folds, "genres": list(self.genres),
                "notes": dict(self.notes), "part": dict(self.part)}

    @classmethod
    def from_dict(cls, name: str, d: Mapping[str, Any]) -> Split:
        return cls(name, d["kind"], d["by"], {str(k): int(v) for k, v in d["part"].items()}, int(d["n_folds"]),
                   tuple(d.get("genres", ())), dict(d.get("notes", {})))


def folds_split(name: str, by: str, clip_ids: Sequence[str], folds: Sequence[int] | IntArray, n_folds: int,
                **notes: Any) -> Split:
    return Split(name, "folds", by, dict(zip(clip_ids, map(int, folds), strict=True)), n_folds, notes=notes)


def holdout_split(name: str, by: str, clip_ids: Sequence[str], parts: Sequence[int] | IntArray,
                  genres: Sequence[str] = (), **notes: Any) -> Split:
    return Split(name, "holdout", by, dict(zip(clip_ids, map(int, parts), strict=True)), 2, tuple(genres),
                 notes=notes)


@dataclass(frozen=True)
class RunPlan:
    """Every split of one run over the same decodable clips, and the feature copies that follow from them."""

    seed: int
    protocol: str  # the headline split's grouping: "artist" (metadata found) or "clip" (none)
    clip_ids: tuple[str, ...]
    genres: tuple[str, ...]  # per clip
    groups: tuple[str, ...]  # per clip: clips sharing a group never sit on two sides
    splits: Mapping[str, Split]
    variants: Mapping[str, tuple[str, ...]]  # clip id -> feature copies to extract (always starts with clean)
    skipped: tuple[Mapping[str, str], ...] = ()

    def split(self, name: str) -> Split:
        return self.splits[name]

    def to_dict(self) -> dict[str, Any]:
        return {"version": PLAN_VERSION, "seed": self.seed, "protocol": self.protocol,
                "clips": [{"clip_id": c, "genre": g, "group": grp, "variants": list(self.variants[c])}
                          for c, g, grp in zip(self.clip_ids, self.genres, self.groups, strict=True)],
                "skipped": [dict(s) for s in self.skipped],
                "splits": {name: s.to_dict() for name, s in self.splits.items()}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunPlan:
        if d.get("version") != PLAN_VERSION:
            raise ValueError(f"split.json version {d.get('version')!r}, expected {PLAN_VERSION}")
        clips = d["clips"]
        return cls(int(d["seed"]), str(d["protocol"]), tuple(c["clip_id"] for c in clips),
                   tuple(c["genre"] for c in clips), tuple(c["group"] for c in clips),
                   {name: Split.from_dict(name, s) for name, s in d["splits"].items()},
                   {c["clip_id"]: tuple(c["variants"]) for c in clips}, tuple(d.get("skipped", ())))

    def save(self, out: Path, extra: Mapping[str, Any] | None = None, name: str = PLAN_FILE) -> Path:
        """Write ``out/<name>``; ``extra`` adds top-level keys (the shipped model's train/test lists)."""
        path = out / name
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({**self.to_dict(), **(extra or {})}, indent=1) + "\n")
        return path

    @classmethod
    def load(cls, path: Path) -> RunPlan:
        return cls.from_dict(json.loads(path.read_text()))


def make_plan(clip_ids: Sequence[str], genres: Sequence[str], groups: Sequence[str], splits: Sequence[Split], *,
              seed: int, protocol: str, train_copies: Sequence[str], test_copies: Sequence[str],
              skipped: Sequence[Mapping[str, str]] = ()) -> RunPlan:
    """The plan over ``clip_ids``: a clip gets ``train_copies`` if any split trains on it, ``test_copies`` if any
    split scores it (clean always). Raises ValueError if a split names clips outside the plan or, for a split by
    group, puts one group on two sides."""
    ids = list(clip_ids)
    known = set(ids)
    for s in splits:
        extra = set(s.part) - known
        if extra:
            raise ValueError(f"split {s.name!r} names {len(extra)} clips outside the plan, e.g. {sorted(extra)[0]}")
        if s.by == "artist":
            _check_groups(s, ids, groups)
    variants: dict[str, tuple[str, ...]] = {}
    for cid in ids:
        wanted = [CLEAN]
        if any(s.trains(cid) for s in splits):
            wanted += train_copies
        if any(s.tests(cid) for s in splits):
            wanted += test_copies
        variants[cid] = tuple(dict.fromkeys(wanted))
    return RunPlan(seed, protocol, tuple(ids), tuple(genres), tuple(groups), {s.name: s for s in splits}, variants,
                   tuple(skipped))


def _check_groups(split: Split, clip_ids: Sequence[str], groups: Sequence[str]) -> None:
    side: dict[str, int] = {}
    for cid, grp in zip(clip_ids, groups, strict=True):
        p = split.part.get(cid, -1)
        if p < 0:
            continue
        if side.setdefault(grp, p) != p:
            raise ValueError(f"split {split.name!r} puts group {grp!r} on two sides")


def _codes(genres: Sequence[str]) -> IntArray:
    names = sorted(set(genres))
    return np.array([names.index(g) for g in genres], dtype=np.int64)


def train_plan(clip_ids: Sequence[str], genres: Sequence[str], groups: Sequence[str], protocol: str, *,
               test_fraction: float, seed: int, train_copies: Sequence[str], test_copies: Sequence[str],
               skipped: Sequence[Mapping[str, str]] = ()) -> RunPlan:
    """The shipped model's plan: one held-out part, whole artist groups when ``protocol`` is "artist"."""
    y = _codes(genres)
    if protocol == ARTIST:
        parts = grouped_holdout(y, groups, test_fraction, seed)
    else:
        parts = holdout_parts(y, test_fraction, seed)
    split = holdout_split(HOLDOUT, protocol, clip_ids, parts, test_fraction=test_fraction)
    return make_plan(clip_ids, genres, groups, [split], seed=seed, protocol=protocol, train_copies=train_copies,
                     test_copies=test_copies, skipped=skipped)


def cv_plan(clip_ids: Sequence[str], genres: Sequence[str], groups: Sequence[str], protocol: str, *, n_folds: int,
            seed: int, train_copies: Sequence[str], test_copies: Sequence[str],
            skipped: Sequence[Mapping[str, str]] = (), by_clip: bool = True,
            fault_filtered: Mapping[str, Sequence[str]] | None = None, fault_genres: Sequence[str] = (),
            core: Sequence[bool] | None = None) -> RunPlan:
    """The comparison's plan: k folds by ``protocol`` (the headline), by clip beside it when the headline is by
    artist and ``by_clip``, the fault-filtered holdout on ``fault_genres`` (train+valid vs test) and k folds by
    clip over the balanced core (``core`` marks its clips)."""
    y = _codes(genres)
    ids = list(clip_ids)
    splits = []
    if protocol == ARTIST:
        splits.append(folds_split(ARTIST, ARTIST, ids, grouped_folds(y, groups, n_folds, seed), n_folds))
    if protocol != ARTIST or by_clip:
        splits.append(folds_split(CLIP, CLIP, ids, stratified_folds(y, n_folds, seed), n_folds))
    if fault_filtered and fault_genres:
        side = {cid: 0 for part in ("train", "valid") for cid in fault_filtered[part]}
        side.update({cid: 1 for cid in fault_filtered["test"]})
        chosen = set(fault_genres)
        part = {cid: side[cid] for cid, g in zip(ids, genres, strict=True) if g in chosen and cid in side}
        splits.append(Split(FAULT_FILTERED, "holdout", FAULT_FILTERED, part, 2, tuple(sorted(chosen)),
                            notes={"train": "train + valid lists", "test": "test list"}))
    if core is not None and sum(core) >= 2 * n_folds:
        idx = [i for i, c in enumerate(core) if c]
        folds = stratified_folds(y[idx], n_folds, seed)
        splits.append(Split(CORE, "folds", CLIP, {ids[i]: int(f) for i, f in zip(idx, folds, strict=True)},
                            n_folds))
    return make_plan(ids, genres, groups, splits, seed=seed, protocol=protocol, train_copies=train_copies,
                     test_copies=test_copies, skipped=skipped)
