"""Finding clips (GTZAN folder layouts or a manifest.csv) and turning them into cached MFCC frames.

Features are raw MFCC frames of the whole clip on the global frame grid (``edge.features.mfcc``),
before any normalisation, so every recipe that shares the MFCC parameters shares the cache. A cache
entry is keyed by those parameters, the file's sha256, the variant (clean, an evaluation
degradation, or a training augmentation) and the hash of the code that shapes features
(``trainer.data.code_tag``), so a second run only reads ``.npy`` files and changed code never does.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import multiprocessing as mp
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from edge.audio import load_audio
from edge.errors import EX_DATAERR, GenreError, UsageError
from edge.features import mfcc
from edge.spec import FeatureSpec
from trainer.data.code_tag import feature_code_tag
from trainer.data.variants import variant_audio

log = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".wav", ".au", ".ogg", ".flac")
CACHE_VERSION = 2  # 2: every variant keyed on trainer.data.code_tag
FloatArray = npt.NDArray[np.float32]
_ID_RE = re.compile(r"^(?P<genre>[A-Za-z0-9_-]+)\.(?P<num>\d+)$")
_SPEC_KEYS = ("sample_rate", "n_mfcc", "n_fft", "win_length", "hop_length", "n_mels", "low_hz", "high_hz",
              "winfunc", "preemph", "ceplifter", "append_energy")
_SPEC_KEYS_IF_SET = ("mel_floor_db",)


class DatasetError(GenreError):
    """The data folder cannot be trained on (no audio, a single genre, unreadable manifest)."""

    exit_code = EX_DATAERR


@dataclass(frozen=True)
class Clip:
    """One audio file of one genre. ``core`` marks the balanced 10-per-genre subset (manifest only)."""

    clip_id: str
    genre: str
    path: Path
    sha256: str
    core: bool = False


@dataclass(frozen=True)
class Skipped:
    clip_id: str
    path: str
    reason: str


def default_cache_dir() -> Path:
    return Path(os.environ.get("GENRE_PI_CACHE", Path.home() / ".cache" / "genre-pi"))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def discover(root: Path) -> tuple[list[Clip], list[Skipped]]:
    """Clips under ``root``: its manifest.csv if present, else ``<genre>/<file>`` (or ``genres_original/``).

    Raises UsageError if ``root`` is not a directory and DatasetError if it holds no audio or one genre.
    """
    if not root.is_dir():
        raise UsageError(f"{root}: data folder does not exist or is not a directory")
    skipped: list[Skipped] = []
    manifest = root / "manifest.csv"
    if manifest.is_file():
        clips = _from_manifest(root, manifest, skipped)
    else:
        base = root / "genres_original" if (root / "genres_original").is_dir() else root
        clips = _from_folders(base)
    if not clips:
        raise DatasetError(
            f"{root}: no audio found (expected <genre>/<genre>.NNNNN.{{wav,au,ogg}} or genres_original/<genre>/...)"
        )
    genres = sorted({c.genre for c in clips})
    if len(genres) < 2:
        raise DatasetError(f"{root}: found only one genre ({genres[0]}); a classifier needs at least two")
    clips.sort(key=lambda c: (c.genre, c.clip_id))
    return clips, skipped


def _from_manifest(root: Path, manifest: Path, skipped: list[Skipped]) -> list[Clip]:
    clips: list[Clip] = []
    try:
        rows = list(csv.DictReader(manifest.open(newline="")))
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        raise DatasetError(f"{manifest}: cannot read ({exc})") from None
    for row in rows:
        try:
            rel, genre = row["path"], row["genre"]
        except KeyError as exc:
            raise DatasetError(f"{manifest}: missing column {exc}") from None
        path = root / rel
        clip_id = row.get("gtzan_id") or Path(rel).stem
        if "decode_failed" in (row.get("note") or ""):
            skipped.append(Skipped(clip_id, str(path), "marked decode_failed in manifest.csv"))
            continue
        if not path.is_file():
            skipped.append(Skipped(clip_id, str(path), "listed in manifest.csv but missing"))
            continue
        sha = row.get("sha256") or file_sha256(path)
        clips.append(Clip(clip_id, genre, path, sha, row.get("balanced_core", "0").strip() == "1"))
    return clips


def _from_folders(base: Path) -> list[Clip]:
    clips: list[Clip] = []
    for genre_dir in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for path in sorted(genre_dir.iterdir()):
            if path.suffix.lower() not in AUDIO_EXTENSIONS or not path.is_file():
                continue
            match = _ID_RE.match(path.stem)
            core = bool(match and match["genre"] == genre_dir.name and int(match["num"]) < 10)
            clips.append(Clip(path.stem, genre_dir.name, path, file_sha256(path), core))
    return clips


def spec_cache_tag(spec: FeatureSpec) -> str:
    """Hash of the spec fields that shape raw MFCC frames (not labels, CMN or normalisation)."""
    data = spec.to_dict()
    keys = {k: data[k] for k in _SPEC_KEYS}
    for k in _SPEC_KEYS_IF_SET:  # fields added later join the key only when set, so older caches stay valid
        if data[k] is not None:
            keys[k] = data[k]
    return hashlib.sha256(json.dumps(keys, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class FeatureStore:
    """Raw MFCC frames per (clip_id, variant); variant is "clean", "eval/<severity>" or "aug/<k>"."""

    frames: dict[tuple[str, str], FloatArray]
    skipped: list[Skipped]
    computed: int
    cache_hits: int

    def get(self, clip_id: str, variant: str = "clean") -> FloatArray:
        return self.frames[(clip_id, variant)]


def _cache_path(cache_dir: Path, spec_tag: str, sha: str, variant: str, code_tag: str, aug_seed: int) -> Path:
    extra = f"-{code_tag}"  # every variant, clean too: decoding and the MFCC are code as well
    if variant.startswith(("aug/", "noise/")):
        extra += f"-s{aug_seed}"
    name = f"{sha[:32]}-{variant.replace('/', '_')}{extra}.npy"
    return cache_dir / f"features-v{CACHE_VERSION}-{spec_tag}" / name


def _extract_one(job: tuple[str, str, str, list[str], dict[str, Any], str, str, int]) -> tuple[str, str | None, int]:
    """Worker: decode once, compute every missing variant, write each to the cache. No TensorFlow here."""
    clip_id, path, sha, variants, spec_dict, cache_dir, code_tag, aug_seed = job

    spec = FeatureSpec.from_dict(spec_dict)
    try:
        audio = load_audio(path, spec.sample_rate)
    except GenreError as exc:
        return clip_id, str(exc), 0
    if audio.size < spec.window_span_samples:
        return clip_id, f"{path}: too short ({audio.size / spec.sample_rate:.2f} s < one {spec.window_s:g} s window)", 0
    tag = spec_cache_tag(spec)
    done = 0
    for variant in variants:
        target = _cache_path(Path(cache_dir), tag, sha, variant, code_tag, aug_seed)
        if target.exists():
            continue
        signal = variant_audio(audio, spec.sample_rate, sha, variant, Path(cache_dir), aug_seed)
        feats = mfcc(np.asarray(signal, dtype=np.float32), spec)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f"{target.stem}.{os.getpid()}.tmp.npy")
        np.save(tmp, feats)
        tmp.replace(target)  # atomic: parallel runs never read half a file
        done += 1
    return clip_id, None, done


def extract_features(
    clips: Sequence[Clip],
    spec: FeatureSpec,
    variants: Iterable[str] | Mapping[str, Sequence[str]] = ("clean",),
    *,
    cache_dir: Path,
    workers: int | None = None,
    aug_seed: int = 0,
    progress: bool = True,
) -> FeatureStore:
    """MFCC frames for every clip and variant, computed in parallel processes and cached on disk.

    Clips that fail to decode or are shorter than one window are skipped (logged, listed in the result).
    """
    if isinstance(variants, Mapping):
        per_clip = {c.clip_id: list(dict.fromkeys(["clean", *variants.get(c.clip_id, ())])) for c in clips}
    else:
        shared = list(dict.fromkeys(variants))
        per_clip = {c.clip_id: shared for c in clips}
    tag, code_tag = spec_cache_tag(spec), feature_code_tag()
    spec_dict = spec.with_updates(mean=None, std=None).to_dict()
    jobs = []
    hits = 0
    for clip in clips:
        wanted = per_clip[clip.clip_id]
        missing = [v for v in wanted if not _cache_path(cache_dir, tag, clip.sha256, v, code_tag, aug_seed).exists()]
        hits += len(wanted) - len(missing)
        if missing:
            jobs.append(
                (clip.clip_id, str(clip.path), clip.sha256, missing, spec_dict, str(cache_dir), code_tag, aug_seed)
            )
    errors: dict[str, str] = {}
    computed = 0
    if jobs:
        n_workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
        results: Iterable[tuple[str, str | None, int]]
        # spawn, not fork: the parent may already hold TensorFlow's threads, which fork would corrupt.
        ctx = mp.get_context("spawn")
        with ctx.Pool(n_workers) if n_workers > 1 else _Serial() as pool:
            results = pool.imap_unordered(_extract_one, jobs)
            if progress:
                results = tqdm(results, total=len(jobs), desc="features", unit="clip", leave=False)
            for clip_id, error, done in results:
                computed += done
                if error:
                    errors[clip_id] = error
    skipped: list[Skipped] = []
    frames: dict[tuple[str, str], FloatArray] = {}
    for clip in clips:
        if clip.clip_id in errors:
            log.warning("skipping %s", errors[clip.clip_id])
            skipped.append(Skipped(clip.clip_id, str(clip.path), errors[clip.clip_id]))
            continue
        for v in per_clip[clip.clip_id]:
            frames[(clip.clip_id, v)] = np.load(_cache_path(cache_dir, tag, clip.sha256, v, code_tag, aug_seed))
    return FeatureStore(frames, skipped, computed, hits)


class _Serial:
    """Stand-in for a Pool with one worker: no process start-up cost for tiny runs."""

    def __enter__(self) -> _Serial:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def imap_unordered(self, fn: Any, jobs: Sequence[Any]) -> Iterable[Any]:
        return map(fn, jobs)
