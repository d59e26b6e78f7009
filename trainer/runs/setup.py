"""What every ``genre-train`` command does before its own work: find the data folder and cache, read the artist
groups, record skipped clips and the plan, describe the data in the report, attach the teacher's embeddings for a
recipe that distils."""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edge.errors import UsageError
from trainer.data.dataset import DatasetError, default_cache_dir
from trainer.data.groups import artist_groups, read_artist_meta
from trainer.data.plan import HOLDOUT
from trainer.model.recipes import Recipe
from trainer.runs.fit import severities_available
from trainer.teacher.embed import embed_clips
from trainer.teacher.wheel import LICENCE

log = logging.getLogger("genre-train")
REPO = Path(__file__).resolve().parent.parent.parent


def default_data_dir() -> Path:
    """``../shared/gtzan`` next to the working directory, else next to the repository."""
    here = Path("../shared/gtzan")
    return here if here.is_dir() else REPO.parent / "shared" / "gtzan"


def setup(args: argparse.Namespace) -> tuple[Path, Path, tuple[str, ...]]:
    data = args.data or default_data_dir()
    if not data.exists():
        raise UsageError(f"{data}: data folder does not exist (pass --data)")
    cache = args.cache_dir or default_cache_dir()
    args.out.mkdir(parents=True, exist_ok=True)
    severities = () if args.no_degrade else severities_available()
    return data, cache, severities


def data_section(data_dir: Path, data: Any) -> dict[str, Any]:
    """report.json ``data`` of a CNN run's ``Data`` (features from the feature store)."""
    return clips_section(data_dir, data.clips, data.labels, data.counts(), data.skipped, data.store.computed,
                         data.store.cache_hits)


def clips_section(data_dir: Path, clips: Sequence[Any], labels: Sequence[str], counts: dict[str, int],
                  skipped: Sequence[Any], computed: int, cached: int) -> dict[str, Any]:
    """report.json ``data``: the clips used per genre (and in the balanced core), the skipped ones, and how many
    feature (or embedding) copies were computed or read from the cache."""
    return {"root": str(data_dir), "clips": len(clips), "counts": counts,
            "core_counts": {g: sum(1 for c in clips if c.core and c.genre == g) for g in labels},
            "skipped": skipped_rows(skipped), "skipped_count": len(skipped),
            "features_computed": computed, "features_cached": cached}


def groups_of(data_dir: Path, clips: Sequence[Any]) -> tuple[list[str], str]:
    """Each clip's artist group and the protocol it allows: "artist" with the folder's metadata, else "clip"."""
    meta = read_artist_meta(data_dir)
    ids = [c.clip_id for c in clips]
    if not meta.available:
        log.warning("%s has no artist metadata (manifest.csv artist, meta/foleis_artist_groups.csv, "
                    "meta/suspected_repeats.csv): splitting by clip, which is optimistic for GTZAN", data_dir)
        return ids, "clip"
    return artist_groups(ids, meta), "artist"


def skipped_rows(skipped: Sequence[Any]) -> list[dict[str, str]]:
    return [{"clip_id": s.clip_id, "path": s.path, "reason": s.reason} for s in skipped]


def save_plan(args: argparse.Namespace, plan: Any, protocol: str) -> None:
    holdout = plan.split(HOLDOUT)
    plan.save(args.out, extra={"by": protocol, "stratified": True, "seed": args.seed,
                               "test_fraction": args.test_fraction,
                               "train": [c for c in plan.clip_ids if holdout.part[c] == 0],
                               "test": [c for c in plan.clip_ids if holdout.part[c] == 1]})


def attach_teacher(data: Any, plan: Any, recipe: Recipe, cache: Path, workers: int | None) -> dict[str, Any]:
    """Teacher embeddings of every clip and the plan's artist groups, for a recipe that distils."""
    if not recipe.teacher_weight:
        return {}
    t0 = time.perf_counter()
    got = embed_clips([(c.path, c.sha256) for c in data.clips], cache, workers=workers)
    if got.failed:
        raise DatasetError(f"the teacher could not read {len(got.failed)} clips: {next(iter(got.failed.values()))}")
    data.teacher = {c.clip_id: got.by_sha[c.sha256] for c in data.clips}
    data.groups = dict(zip(plan.clip_ids, plan.groups, strict=True))
    log.info("teacher embeddings for %d clips (%d computed, %d cached) in %.0f s", len(data.clips), got.computed,
             got.cached, time.perf_counter() - t0)
    return {"model": "musicnn MSD_musicnn", "licence": LICENCE, "version": got.version,
            "embeddings_computed": got.computed, "embeddings_cached": got.cached,
            "seconds": time.perf_counter() - t0}
