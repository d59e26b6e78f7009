"""Which clips must stay on one side of a split: artist groups and repeated excerpts (GTZAN metadata).

GTZAN clusters by artist (35 Bob Marley reggae clips, 24 Britney Spears pop clips) and holds repeated
excerpts, so a split by clip lets a test clip's artist, or the very same music, sit in training and
the accuracy comes out too high. Two clips share a group when they have the same ``artist`` in
manifest.csv, the same number in ``meta/foleis_artist_groups.csv`` (Foleis & Tavares 2020: clips of one
artist share a number, unknown artists have their own), or form a pair in ``meta/suspected_repeats.csv``;
groups are the connected components of those links (union-find). A clip with none of them is its own group.

A folder without that metadata (a user's own GTZAN download) has no groups: every clip is its own
group and the run says ``protocol: "clip"`` instead of ``"artist"``.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

FOLEIS_GROUPS = Path("meta") / "foleis_artist_groups.csv"
REPEATS = Path("meta") / "suspected_repeats.csv"
FAULT_FILTERED = Path("splits")
FAULT_FILTERED_PARTS = ("train", "valid", "test")


@dataclass(frozen=True)
class ArtistMeta:
    """What the data folder says about who made each clip; empty mappings when it says nothing."""

    artist: Mapping[str, str]  # clip id -> artist name (manifest.csv), only where known
    foleis: Mapping[str, str]  # clip id -> Foleis artist-group number
    repeats: Sequence[tuple[str, str]]  # pairs of clip ids that are the same music

    @property
    def available(self) -> bool:
        return bool(self.artist or self.foleis or self.repeats)


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def read_artist_meta(root: Path) -> ArtistMeta:
    """``artist`` from manifest.csv, Foleis' groups and the repeat pairs, each only if the file is there."""
    artist = {}
    for row in _read_csv(root / "manifest.csv"):
        clip_id = row.get("gtzan_id") or Path(row.get("path", "")).stem
        name = (row.get("artist") or "").strip()
        if clip_id and name:
            artist[clip_id] = name
    foleis = {r["gtzan_id"]: r["artist_group"] for r in _read_csv(root / FOLEIS_GROUPS)
              if r.get("gtzan_id") and r.get("artist_group")}
    repeats = [(r["id_a"], r["id_b"]) for r in _read_csv(root / REPEATS) if r.get("id_a") and r.get("id_b")]
    return ArtistMeta(artist, foleis, repeats)


class _UnionFind:
    def __init__(self, items: Iterable[str]) -> None:
        self.parent = {i: i for i in items}

    def find(self, x: str) -> str:
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:  # path compression
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            # The smaller id becomes the root, so group names do not depend on the order of the links.
            lo, hi = sorted((ra, rb))
            self.parent[hi] = lo


def artist_groups(clip_ids: Sequence[str], meta: ArtistMeta) -> list[str]:
    """A group name per clip (the smallest clip id in its group); links to clips not in ``clip_ids`` are ignored.

    Names are compared case- and space-insensitively ("Bob Marley" = "bob  marley").
    """
    uf = _UnionFind(clip_ids)
    present = set(clip_ids)
    first_of: dict[str, str] = {}
    for cid in clip_ids:
        keys = []
        if cid in meta.artist:
            keys.append("artist:" + " ".join(meta.artist[cid].lower().split()))
        if cid in meta.foleis:
            keys.append("foleis:" + meta.foleis[cid])
        for key in keys:
            uf.union(first_of.setdefault(key, cid), cid)
    for a, b in meta.repeats:
        if a in present and b in present:
            uf.union(a, b)
    return [uf.find(cid) for cid in clip_ids]


def read_fault_filtered(root: Path) -> dict[str, list[str]] | None:
    """The fault-filtered split lists (Kereliuk, Sturm & Larsen 2015) by part, or None if the folder has none."""
    folder = root / FAULT_FILTERED
    paths = {p: folder / f"fault_filtered_{p}.txt" for p in FAULT_FILTERED_PARTS}
    if not all(p.is_file() for p in paths.values()):
        return None
    return {part: [ln.strip() for ln in path.read_text().splitlines() if ln.strip()] for part, path in paths.items()}


def complete_genres(lists: Mapping[str, Sequence[str]], present: Iterable[str], min_share: float = 0.9
                    ) -> tuple[list[str], dict[str, dict[str, str]]]:
    """Genres whose ids are present in every list to at least ``min_share``, and the coverage of each genre.

    On the shared subset that is blues, classical, jazz (42/43: jazz.00054 is GTZAN's bad file) and pop;
    the other six genres hold 1-12 of 13-47 ids per list, too few to score.
    """
    have = set(present)
    genres = sorted({i.split(".", 1)[0] for ids in lists.values() for i in ids})
    coverage: dict[str, dict[str, str]] = {}
    complete = []
    for g in genres:
        shares = {}
        ok = True
        for part, ids in lists.items():
            mine = [i for i in ids if i.split(".", 1)[0] == g]
            got = sum(i in have for i in mine)
            shares[part] = f"{got}/{len(mine)}"
            ok = ok and bool(mine) and got >= min_share * len(mine)
        coverage[g] = shares
        if ok:
            complete.append(g)
    return complete, coverage
