"""Teacher embeddings per 3 s patch of every clip, computed in parallel worker processes and cached.

A clip's entry is keyed by its audio's sha256 and ``teacher_version()`` (the checkpoint's digest and the
code of the mel front end and the network), so a second run reads one ``.npz`` per clip and changed
teacher code never reuses stale embeddings. Workers are spawned, each with one TensorFlow thread: the
convolutions of two patches at once use both cores better than one two-threaded batch.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import multiprocessing as mp
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from edge.audio import load_audio
from edge.errors import GenreError
from trainer.teacher import mel
from trainer.teacher.musicnn import PATCH_FRAMES, Musicnn, read_checkpoint
from trainer.teacher.wheel import CHECKPOINT_FILES, checkpoint_dir

log = logging.getLogger(__name__)
FloatArray = npt.NDArray[np.float32]
_TEACHER_CODE = ("mel.py", "musicnn.py", "embed.py")
_worker: dict[str, Any] = {}


@dataclass(frozen=True)
class ClipEmbedding:
    """One clip's teacher outputs: ``embedding`` (n_patches, 1706), ``tags`` (n_patches, 50) and each
    patch's start in seconds (``starts_s``) and length (``patch_s``)."""

    embedding: FloatArray
    tags: FloatArray
    starts_s: FloatArray
    patch_s: float


@functools.cache
def teacher_version(checkpoint: Path) -> str:
    """12 hex digits over the checkpoint's files and the teacher's code."""
    digest = hashlib.sha256()
    for name in CHECKPOINT_FILES:
        digest.update((checkpoint / name).read_bytes())
    here = Path(__file__).resolve().parent
    for name in _TEACHER_CODE:
        digest.update(name.encode() + b"\0" + (here / name).read_bytes())
    return digest.hexdigest()[:12]


def _entry(cache_dir: Path, version: str, sha: str) -> Path:
    return cache_dir / "teacher" / f"embeddings-{version}" / f"{sha[:32]}.npz"


def _init(checkpoint: str) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf  # lazy: only embedding workers (and training) load TensorFlow

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    _worker["net"] = Musicnn(read_checkpoint(Path(checkpoint)))


def embed_audio(net: Musicnn, audio_16k: FloatArray) -> ClipEmbedding:
    """The teacher's outputs for every whole patch of 16 kHz audio."""
    spectrogram = mel.log_mel(audio_16k)
    starts = mel.patch_starts(spectrogram.shape[0])
    out = net(mel.patches(spectrogram))
    return ClipEmbedding(out.embedding(), out.tags, np.array(starts, dtype=np.float32) * mel.FRAME_S,
                         PATCH_FRAMES * mel.FRAME_S)


def _embed_one(job: tuple[str, str, str]) -> tuple[str, str | None]:
    path, sha, target = job
    try:
        audio = load_audio(path, mel.SAMPLE_RATE)
    except GenreError as exc:
        return sha, str(exc)
    got = embed_audio(_worker["net"], audio)
    if not got.starts_s.size:
        return sha, f"{path}: shorter than one 3 s teacher patch"
    dest = Path(target)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f"{dest.stem}.{os.getpid()}.tmp.npz")
    np.savez(tmp, embedding=got.embedding, tags=got.tags, starts_s=got.starts_s, patch_s=np.float32(got.patch_s))
    tmp.replace(dest)  # atomic: a parallel run never reads half an entry
    return sha, None


def _load(path: Path) -> ClipEmbedding:
    with np.load(path) as z:
        return ClipEmbedding(z["embedding"], z["tags"], z["starts_s"], float(z["patch_s"]))


@dataclass
class Embeddings:
    """Teacher outputs by clip sha256, and how many were computed rather than read from the cache."""

    by_sha: dict[str, ClipEmbedding]
    computed: int
    cached: int
    version: str
    failed: dict[str, str]


def embed_clips(items: Sequence[tuple[str | Path, str]], cache_dir: Path, *, workers: int | None = None,
                progress: bool = True) -> Embeddings:
    """Embeddings for ``items`` = (audio path, sha256); fetches the teacher on first use."""
    checkpoint = checkpoint_dir(cache_dir)
    version = teacher_version(checkpoint)
    unique = dict((sha, str(path)) for path, sha in items)
    jobs = [(path, sha, str(_entry(cache_dir, version, sha))) for sha, path in unique.items()
            if not _entry(cache_dir, version, sha).is_file()]
    failed: dict[str, str] = {}
    if jobs:
        n = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
        log.info("teacher: embedding %d clips in %d processes (%d cached)", len(jobs), n, len(unique) - len(jobs))
        ctx = mp.get_context("spawn")  # the parent may hold TensorFlow's threads already
        with ctx.Pool(n, initializer=_init, initargs=(str(checkpoint),)) as pool:
            results: Iterable[tuple[str, str | None]] = pool.imap_unordered(_embed_one, jobs)
            if progress:
                results = tqdm(results, total=len(jobs), desc="teacher", unit="clip", leave=False)
            for sha, error in results:
                if error:
                    failed[sha] = error
    by_sha = {sha: _load(_entry(cache_dir, version, sha)) for sha in unique if sha not in failed}
    return Embeddings(by_sha, len(jobs) - len(failed), len(unique) - len(jobs), version, failed)
