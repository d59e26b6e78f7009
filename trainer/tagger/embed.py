"""Tagger embeddings of every window of every clip copy, computed in worker processes and cached.

A worker decodes a clip once at the tagger's 16 kHz, makes each missing copy (``trainer.data.variants``),
runs the edge front end (``edge.features``, the daemon's own code) and the exported embedding model
(``edge.runtime``, a lite runtime: TensorFlow is never loaded in a worker) on each window, and writes one
``.npy`` per (clip, copy). The key holds the embedding model's bytes, the feature code's hash and the
window hop, so changed code or another export never reuses stale embeddings. The trainer's head is fitted
on exactly the embeddings the device computes.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing as mp
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from edge.audio import load_audio
from edge.errors import GenreError
from edge.features import mfcc, window_starts
from edge.runtime import TfliteModel
from edge.spec import FeatureSpec
from trainer.data.code_tag import feature_code_tag
from trainer.data.variants import variant_audio

log = logging.getLogger(__name__)
FloatArray = npt.NDArray[np.float32]
_worker: dict[str, Any] = {}


@dataclass
class WindowEmbeddings:
    """``get(clip_id, variant)``: (n_windows, 50 + 1706) tag scores then embedding, one row per window."""

    rows: dict[tuple[str, str], FloatArray]
    computed: int
    cached: int
    failed: dict[str, str]

    def get(self, clip_id: str, variant: str = "clean") -> FloatArray:
        return self.rows[(clip_id, variant)]


def _model_tag(model: Path) -> str:
    return hashlib.sha256(model.read_bytes()).hexdigest()[:12]


def _entry(cache_dir: Path, tag: str, sha: str, variant: str, hop_frames: int, aug_seed: int) -> Path:
    seed = f"-s{aug_seed}" if variant.startswith(("aug/", "noise/")) else ""
    return cache_dir / f"tagger-{tag}" / f"{sha[:32]}-{variant.replace('/', '_')}-h{hop_frames}{seed}.npy"


def _init(model: str) -> None:
    _worker["model"] = TfliteModel(model, num_threads=1)


def embed_signal(model: TfliteModel, signal: FloatArray, spec: FeatureSpec, hop_frames: int) -> FloatArray:
    """Every full window of ``signal`` (at ``spec.sample_rate``), ``hop_frames`` apart, through ``model``."""
    frames = mfcc(signal, spec)
    rows = [model.run(frames[s : s + spec.frames_per_window]) for s in window_starts(frames.shape[0], spec, hop_frames)]
    return np.stack(rows) if rows else np.zeros((0, model.output_size), dtype=np.float32)


def _embed_one(job: tuple[str, str, str, list[str], dict[str, Any], str, str, int, int]) -> tuple[str, str | None, int]:
    clip_id, path, sha, variants, spec_dict, cache_dir, tag, hop_frames, aug_seed = job
    spec = FeatureSpec.from_dict(spec_dict)
    try:
        audio = load_audio(path, spec.sample_rate)
    except GenreError as exc:
        return clip_id, str(exc), 0
    if audio.size < spec.window_span_samples:
        return clip_id, f"{path}: shorter than one {spec.window_s:.2f} s window", 0
    done = 0
    for variant in variants:
        signal = variant_audio(audio, spec.sample_rate, sha, variant, Path(cache_dir), aug_seed)
        rows = embed_signal(_worker["model"], signal, spec, hop_frames)
        target = _entry(Path(cache_dir), tag, sha, variant, hop_frames, aug_seed)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f"{target.stem}.{os.getpid()}.tmp.npy")
        np.save(tmp, rows)
        tmp.replace(target)  # atomic: a parallel run never reads half an entry
        done += 1
    return clip_id, None, done


def _embed_batch(inputs: FloatArray) -> FloatArray:
    model: TfliteModel = _worker["model"]
    rows = [model.run(window) for window in inputs]
    return np.stack(rows) if rows else np.zeros((0, model.output_size), dtype=np.float32)


class InputEmbedder:
    """Embedding-model rows of any model inputs (a playlist's windows), in lite-runtime worker processes, cached
    on disk by the inputs' bytes and the embedding model + feature code key. Use as a context manager."""

    BATCH = 64  # windows per job: both workers busy on one playlist, little pickling per job

    def __init__(self, model: Path, cache_dir: Path | None, workers: int | None = None) -> None:
        self.model = model
        self.cache = cache_dir / f"tagger-{_model_tag(model)}-{feature_code_tag()}" / "inputs" if cache_dir else None
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.computed = self.cached = 0
        self._pool: Any = None

    def __enter__(self) -> InputEmbedder:
        self._pool = mp.get_context("spawn").Pool(self.workers, initializer=_init, initargs=(str(self.model),))
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.close()
        self._pool.join()

    def __call__(self, inputs: FloatArray) -> FloatArray:
        x = np.ascontiguousarray(inputs, dtype=np.float32)
        key = hashlib.sha256(repr(x.shape).encode() + x.tobytes()).hexdigest()[:32]
        path = self.cache / f"{key}.npy" if self.cache else None
        if path is not None and path.is_file():
            self.cached += x.shape[0]
            loaded: FloatArray = np.load(path)
            return loaded
        if self._pool is None:
            raise RuntimeError("InputEmbedder is used as a context manager (it owns worker processes)")
        parts = self._pool.map(_embed_batch, [x[i : i + self.BATCH] for i in range(0, x.shape[0], self.BATCH)])
        rows = np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)
        self.computed += x.shape[0]
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npy")
            np.save(tmp, rows)
            tmp.replace(path)
        return rows


def embed_windows(clips: Sequence[Any], variants: Mapping[str, Sequence[str]], spec: FeatureSpec, model: Path,
                  cache_dir: Path, *, hop_frames: int, workers: int | None = None, aug_seed: int = 0,
                  progress: bool = True) -> WindowEmbeddings:
    """Embeddings of ``clips`` (``.clip_id``, ``.path``, ``.sha256``), clean plus ``variants[clip_id]``."""
    tag = f"{_model_tag(model)}-{feature_code_tag()}"
    spec_dict = spec.with_updates(mean=None, std=None).to_dict()
    wanted = {c.clip_id: list(dict.fromkeys(["clean", *variants.get(c.clip_id, ())])) for c in clips}
    jobs = []
    for c in clips:
        missing = [v for v in wanted[c.clip_id]
                   if not _entry(cache_dir, tag, c.sha256, v, hop_frames, aug_seed).is_file()]
        if missing:
            jobs.append((c.clip_id, str(c.path), c.sha256, missing, spec_dict, str(cache_dir), tag, hop_frames,
                         aug_seed))
    failed: dict[str, str] = {}
    computed = 0
    if jobs:
        n = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
        log.info("tagger: embedding %d clips' copies in %d processes", len(jobs), n)
        ctx = mp.get_context("spawn")  # the parent may hold TensorFlow, which must not meet a lite runtime
        with ctx.Pool(n, initializer=_init, initargs=(str(model),)) as pool:
            results: Iterable[tuple[str, str | None, int]] = pool.imap_unordered(_embed_one, jobs)
            if progress:
                results = tqdm(results, total=len(jobs), desc="tagger", unit="clip", leave=False)
            for clip_id, error, done in results:
                computed += done
                if error:
                    failed[clip_id] = error
    rows = {(c.clip_id, v): np.load(_entry(cache_dir, tag, c.sha256, v, hop_frames, aug_seed))
            for c in clips if c.clip_id not in failed for v in wanted[c.clip_id]}
    total = sum(len(v) for v in wanted.values())
    return WindowEmbeddings(rows, computed, total - computed, failed)
