"""Section 1: MFCC cost per hop (3 s window, hop 0.5 s and 1 s) and for a whole 30 s clip.

Compared side by side, interleaved in rounds: our StreamingMfcc (new frames only), the same code before the
speed-up commit (from git), our batch ``mfcc`` recomputing the window, python_speech_features recomputing the
window, the seed's librosa pipeline (Velardo: ``librosa.feature.mfcc`` per window), and a bare numpy floor
(rfft + power + mel matmul + DCT matmul of only the new, already framed frames: no framing, no Python).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import importlib
import importlib.util
import io
import pstats
import subprocess
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt
import python_speech_features as psf
from python_speech_features import base as psf_base
from scipy.fftpack import dct as fftpack_dct

from bench.common import REPO, Row, SectionResult, Table, Target, music_like, section_main, time_calls
from edge.features import StreamingMfcc, mfcc, preemphasize
from edge.spec import FeatureSpec

SPEEDUP_COMMIT = "7ccc8b5"  # edge/features: banded filterbank, scipy rfft (this bench's own fix)
Variant = tuple[str, Callable[[], object], int | None, str]
Arr = npt.NDArray[Any]
BLOCK = 64  # name, call, BLAS threads (None = default), note


@contextlib.contextmanager
def blas_threads(n: int | None) -> Iterator[None]:
    """Limit BLAS to ``n`` threads for a block (threadpoolctl); a no-op for None or without threadpoolctl."""
    if n is None:
        yield
        return
    try:
        threadpoolctl = importlib.import_module("threadpoolctl")  # librosa's dependency; untyped
    except ImportError:
        yield
        return
    with threadpoolctl.threadpool_limits(limits=n, user_api="blas"):
        yield


def previous_features() -> ModuleType | None:
    """edge/features.py as it was before the speed-up commit, or None outside a git checkout."""
    try:
        src = subprocess.run(
            ["git", "show", f"{SPEEDUP_COMMIT}^:edge/features.py"], cwd=REPO, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if src.returncode != 0:
        return None
    path = Path(tempfile.mkdtemp(prefix="bench-features-")) / "features_before.py"
    path.write_text(src.stdout)
    spec = importlib.util.spec_from_file_location("features_before", path)
    if spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Floor:
    """The arithmetic every MFCC pipeline must do for ``n`` new frames, with nothing else around it."""

    def __init__(self, spec: FeatureSpec, frames: Arr) -> None:
        self.frames = np.ascontiguousarray(frames, dtype=np.float64)  # framed + pre-emphasised beforehand
        self.window = np.hanning(spec.win_length + 1)[:-1]
        fb = psf_base.get_filterbanks(spec.n_mels, spec.n_fft, spec.sample_rate, spec.low_hz, spec.effective_high_hz)
        self.fbank_t = np.ascontiguousarray(fb.T) / spec.n_fft
        self.dct = np.ascontiguousarray(
            fftpack_dct(np.eye(spec.n_mels), type=2, norm="ortho", axis=0)[:, : spec.n_mfcc]
        )

    def __call__(self) -> Arr:
        if self.frames.shape[0] <= BLOCK:
            return self._block(self.frames)
        # In cache-sized blocks, like edge.features: otherwise the "floor" would pay for 20 MB temporaries.
        return np.concatenate([self._block(self.frames[i : i + BLOCK]) for i in range(0, self.frames.shape[0], BLOCK)])

    def _block(self, frames: Arr) -> Arr:
        spectrum = np.fft.rfft(frames * self.window, axis=1)
        power = spectrum.real**2 + spectrum.imag**2
        out: Arr = np.log(power @ self.fbank_t + 1e-12) @ self.dct
        return out


def psf_mfcc(x: Arr, spec: FeatureSpec) -> Arr:
    sr = spec.sample_rate
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out: Arr = psf.mfcc(
            x,
            sr,
            winlen=spec.win_length / sr,
            winstep=spec.hop_length / sr,
            numcep=spec.n_mfcc,
            nfilt=spec.n_mels,
            nfft=spec.n_fft,
            preemph=spec.preemph,
            ceplifter=spec.ceplifter,
            winfunc=lambda n: np.hanning(n + 1)[:-1],
        )
    return out


def librosa_mfcc(librosa: Any, x: Arr, spec: FeatureSpec) -> Arr:
    """Velardo's seed: ``librosa.feature.mfcc(y=signal[start:finish], sr, n_mfcc=13, n_fft=2048, hop_length=512).T``."""
    out: Arr = librosa.feature.mfcc(
        y=x, sr=spec.sample_rate, n_mfcc=spec.n_mfcc, n_fft=spec.n_fft, hop_length=spec.hop_length
    ).T
    return out


class Pusher:
    """Feeds a streaming MFCC one hop at a time, cycling through the signal after a warm first window."""

    def __init__(self, stream: Any, signal: Arr, hop: int, start: int) -> None:
        self.stream, self.signal, self.hop, self.start, self.pos = stream, signal, hop, start, start
        stream.push(signal[:start])

    def __call__(self) -> object:
        if self.pos + self.hop > self.signal.size:
            self.pos = self.start
        out = self.stream.push(self.signal[self.pos : self.pos + self.hop])
        self.pos += self.hop
        return out


def measure(variants: list[Variant], repeats: int, rounds: int, unit_scale: float = 1e3) -> list[Row]:
    """Interleave the variants round by round; each block runs under its own BLAS thread limit."""
    rows = [Row(name, "ms", note=note) for name, _, _, note in variants]
    per = max(1, repeats // rounds)
    for r in range(rounds):
        for row, (_, fn, threads, _) in zip(rows, variants, strict=True):
            with blas_threads(threads):
                row.samples.extend(s * unit_scale for s in time_calls(fn, per, warmup=3 if r == 0 else 1))
            time.sleep(0.02)  # let OpenBLAS workers from the previous block stop spinning
    return rows


def hop_variants(
    spec: FeatureSpec, signal: Arr, hop_s: float, before: ModuleType | None, librosa: Any
) -> list[Variant]:
    hop = round(hop_s * spec.sample_rate)
    win = spec.window_samples
    start = win + 7 * spec.sample_rate  # a full window in the ring before timing starts
    window = signal[start - win : start]
    n_new = round(hop / spec.hop_length)
    pre = preemphasize(signal[: start + hop], spec.preemph)
    frames = np.lib.stride_tricks.sliding_window_view(pre, spec.win_length)[:: spec.hop_length][-n_new:]
    floor = Floor(spec, frames)
    out: list[Variant] = [
        ("edge StreamingMfcc.push (new frames only)", Pusher(StreamingMfcc(spec), signal, hop, start), None, "ours"),
        ("numpy floor, new frames only (BLAS 1 thread)", floor, 1, f"{n_new} frames: rfft + mel matmul + DCT"),
        ("numpy floor, new frames only (default BLAS)", floor, None, "the same with OpenBLAS' threads"),
    ]
    if before is not None:
        out.append(
            (
                f"edge StreamingMfcc.push before {SPEEDUP_COMMIT}",
                Pusher(before.StreamingMfcc(spec), signal, hop, start),
                None,
                "dense BLAS filterbank, numpy rfft",
            )
        )
    out.append(("edge mfcc() recomputing the full 3 s window", lambda: mfcc(window, spec), None, "our batch path"))
    out.append(("python_speech_features.mfcc, full 3 s window", lambda: psf_mfcc(window, spec), None, ""))
    if librosa is not None:
        out.append(
            ("librosa.feature.mfcc, full 3 s window (seed)", lambda: librosa_mfcc(librosa, window, spec), None, "")
        )
    return out


def profile_push(spec: FeatureSpec, signal: Arr, n: int) -> str:
    """cProfile of StreamingMfcc.push at hop 1 s: where a hop's time goes, top functions by own time."""
    pusher = Pusher(StreamingMfcc(spec), signal, spec.sample_rate, spec.window_samples)
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(n):
        pusher()
    prof.disable()
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf)
    stats.sort_stats("tottime")
    total = sum(v[2] for v in stats.stats.values())  # type: ignore[attr-defined]
    lines = [f"cProfile, {n} x StreamingMfcc.push(22050 samples), own time per push (total {total / n * 1e3:.3f} ms):"]
    entries = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:9]  # type: ignore[attr-defined]
    for (file, line, func), (_, ncalls, tottime, _, _) in entries:
        where = f"{Path(file).name}:{line}({func})" if file != "~" else func
        lines.append(
            f"  {tottime / n * 1e3:7.3f} ms  {100 * tottime / total:5.1f}%  {where}  [{ncalls // n} call/push]"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> SectionResult:
    spec = FeatureSpec(labels=("a", "b"))
    res = SectionResult("features", "1. Features per hop")
    signal = music_like(40.0, spec.sample_rate)
    before = previous_features()
    librosa: Any = None
    try:
        librosa = importlib.import_module("librosa")
    except ImportError:
        res.notes.append("librosa is not installed: the seed's pipeline is not measured (pip install -e .[dev])")
    if librosa is not None:
        librosa_mfcc(librosa, signal[: spec.window_samples], spec)  # first call compiles numba kernels
    repeats, rounds = (60, 3) if args.quick else (400, 8)
    ratios: dict[float, dict[str, float]] = {}
    for hop_s in (1.0, 0.5):
        variants = hop_variants(spec, signal, hop_s, before, librosa)
        rows = measure(variants, repeats, rounds)
        table = Table(
            f"MFCC per hop, hop {hop_s:g} s ({round(hop_s * spec.sample_rate)} samples), 3 s window",
            rows,
            note="ms per hop; ratio = row median / first row median (higher = costlier than ours)",
        )
        res.tables.append(table)
        med = {r.name: r.median for r in rows}
        ours = rows[0].median
        ratios[hop_s] = {
            "psf": med["python_speech_features.mfcc, full 3 s window"] / ours,
            "floor": ours / med["numpy floor, new frames only (BLAS 1 thread)"],
            "ours_ms": ours,
            "floor_ms": med["numpy floor, new frames only (BLAS 1 thread)"],
            "psf_ms": med["python_speech_features.mfcc, full 3 s window"],
        }
        if librosa is not None:
            lib = med["librosa.feature.mfcc, full 3 s window (seed)"]
            ratios[hop_s].update(librosa=lib / ours, librosa_ms=lib)
        if before is not None:
            ratios[hop_s]["before_ms"] = med[f"edge StreamingMfcc.push before {SPEEDUP_COMMIT}"]
    # The whole 30 s clip, as the trainer extracts it.
    clip = signal[: 30 * spec.sample_rate]
    n_frames = 1 + (clip.size - spec.win_length) // spec.hop_length
    pre = preemphasize(clip, spec.preemph)
    clip_frames = np.lib.stride_tricks.sliding_window_view(pre, spec.win_length)[:: spec.hop_length][:n_frames]
    clip_variants: list[Variant] = [
        ("edge mfcc() on a 30 s clip", lambda: mfcc(clip, spec), None, f"{n_frames} frames"),
        ("numpy floor on the framed clip (BLAS 1 thread)", Floor(spec, clip_frames), 1, ""),
    ]
    if before is not None:
        clip_variants.append((f"edge mfcc() before {SPEEDUP_COMMIT}", lambda: before.mfcc(clip, spec), None, ""))
    clip_variants.append(("python_speech_features.mfcc, 30 s clip", lambda: psf_mfcc(clip, spec), None, ""))
    if librosa is not None:
        clip_variants.append(("librosa.feature.mfcc, 30 s clip", lambda: librosa_mfcc(librosa, clip, spec), None, ""))
    res.tables.append(
        Table(
            "MFCC of a whole 30 s clip (batch)",
            measure(clip_variants, 16 if args.quick else 60, 2 if args.quick else 4),
            note="ms per clip",
        )
    )
    res.profile = profile_push(spec, signal, 100 if args.quick else 400)
    r1 = ratios[1.0]
    # No target on the ratio to python_speech_features (the row stays): it moved 6-16x between runs with
    # psf's multi-threaded BLAS and the second core's load. The distance to the numpy floor is the honest one.
    res.targets = [
        Target("streaming features, hop 1 s: within N x of the numpy floor", r1["floor"], "<=", 2.5, "x"),
    ]
    if "librosa" in r1:
        res.targets.insert(
            0, Target("streaming features, hop 1 s: cheaper than librosa full window", r1["librosa"], ">=", 3.0, "x")
        )
    res.facts = {f"hop_{k:g}s": v for k, v in ratios.items()}
    for hop_s, r in ratios.items():
        line = (
            f"MFCC per hop at hop {hop_s:g} s: StreamingMfcc {r['ours_ms']:.2f} ms; python_speech_features on the "
            f"full window costs {r['psf']:.1f}x that"
        )
        if "librosa" in r:
            line += f", the seed's librosa pipeline {r['librosa']:.1f}x"
        line += f"; ours is {r['floor']:.2f}x the bare numpy floor"
        if "before_ms" in r:
            line += f" (before this change: {r['before_ms'] / r['ours_ms']:.2f}x ours)"
        res.headline.append(line + ".")
    res.notes.append(
        "BLAS threads: the floor is timed with OpenBLAS limited to 1 thread (threadpoolctl) because it is meant "
        "as the arithmetic lower bound; everything else runs as installed. The 'default BLAS' floor row shows what "
        "OpenBLAS' thread hand-off costs a 43x1025 @ 1025x26 product on a shared 2-core machine."
    )
    return res


if __name__ == "__main__":
    section_main("features", run)
