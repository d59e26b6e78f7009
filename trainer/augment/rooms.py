"""Deterministic, cached banks of simulated living-room impulse responses (RIRs).

Simulating a room with the image-source method costs 0.05-0.5 s per RIR, far too slow per clip, so each
(purpose, severity, sample rate) gets a small bank generated once from a fixed seed, kept in-process and,
when a cache dir is given, on disk as ``.npz``. "eval" and "train" banks come from disjoint seed spaces so
a model is never trained on the exact rooms it is evaluated in.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import threading
from typing import Any

import numpy as np
import numpy.typing as npt
import pyroomacoustics as pra

FloatArray = npt.NDArray[np.float32]

PURPOSES: tuple[str, ...] = ("eval", "train")
BANK_SIZE: dict[str, int] = {"eval": 4, "train": 8}  # per severity: 12 eval / 24 train RIRs in all
_PURPOSE_SEED: dict[str, int] = {"eval": 0xE7A1_0001, "train": 0x7A1_0002}
_CACHE_VERSION = 1
_ROOM_MIN_M = np.array([3.5, 3.0, 2.4])  # living room: width, depth, ceiling height (metres)
_ROOM_MAX_M = np.array([7.0, 6.0, 3.0])
_WALL_MARGIN_M = 0.4

_bank_lock = threading.Lock()
_BankKey = tuple[str, str, tuple[float, float], tuple[float, float], int]
_banks: dict[_BankKey, tuple[FloatArray, ...]] = {}


def estimate_rt60(rir: npt.NDArray[np.floating[Any]], sample_rate: int) -> float:
    """RT60 in seconds of an impulse response, by Schroeder backward integration (T20 extrapolated)."""
    return float(pra.experimental.measure_rt60(np.asarray(rir, dtype=np.float64), fs=sample_rate, decay_db=20))


def _check_purpose(purpose: str) -> None:
    if purpose not in PURPOSES:
        raise ValueError(f"unknown purpose {purpose!r}; valid purposes: {', '.join(PURPOSES)}")


def _simulate(dims: npt.NDArray[np.float64], rt60_s: float, src: npt.NDArray[np.float64],
              mic: npt.NDArray[np.float64], sample_rate: int) -> npt.NDArray[np.float64]:
    e_abs, max_order = pra.inverse_sabine(rt60_s, dims)
    # Orders past ~50 cost seconds per RIR; by then the decay is well past the -25 dB the T20 fit uses.
    room = pra.ShoeBox(dims, fs=sample_rate, materials=pra.Material(e_abs), max_order=min(max_order, 50))
    room.add_source(src)
    room.add_microphone(mic)
    room.compute_rir()
    return np.asarray(room.rir[0][0], dtype=np.float64)


def _place(rng: np.random.Generator, dims: npt.NDArray[np.float64],
           distance_m: float) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Speaker and mic positions (metres), about ``distance_m`` apart, both inside the room."""
    lo, hi = np.full(3, _WALL_MARGIN_M), dims - _WALL_MARGIN_M
    src = rng.uniform(lo, hi)
    src[2] = rng.uniform(0.8, 1.4)  # a speaker on a shelf or stand
    for _ in range(32):
        angle = rng.uniform(0.0, 2.0 * np.pi)
        mic = src + distance_m * np.array([np.cos(angle), np.sin(angle), 0.0])
        mic[2] = rng.uniform(0.7, 1.2)
        if np.all(mic >= lo) and np.all(mic <= hi):
            return src, mic
    return src, np.clip(mic, lo, hi)  # room too small for that distance: settle for the nearest spot


def _finish(rir: npt.NDArray[np.float64], sample_rate: int) -> FloatArray:
    """Align the direct path to sample 0, cut the tail below -60 dB, normalise to unit energy."""
    rir = rir[int(np.argmax(np.abs(rir))):]
    energy = np.cumsum(rir[::-1] ** 2)[::-1]
    below = np.nonzero(energy < energy[0] * 1e-6)[0]
    if below.size:
        rir = rir[: max(int(below[0]), sample_rate // 20)]
    out: FloatArray = (rir / np.sqrt(np.sum(rir**2))).astype(np.float32)
    return out


def _generate(purpose: str, severity: str, rt60_range: tuple[float, float],
              distance_range: tuple[float, float], sample_rate: int) -> tuple[FloatArray, ...]:
    digest = hashlib.sha256(f"{severity}".encode()).digest()
    rng = np.random.default_rng([_PURPOSE_SEED[purpose], int.from_bytes(digest[:4], "little")])
    lo, hi = rt60_range
    margin = 0.1 * (hi - lo)
    rirs: list[FloatArray] = []
    while len(rirs) < BANK_SIZE[purpose]:
        dims = rng.uniform(_ROOM_MIN_M, _ROOM_MAX_M)
        wanted = rng.uniform(lo + margin, hi - margin)
        src, mic = _place(rng, dims, rng.uniform(*distance_range))
        # Sabine's formula overestimates how much absorption an ISM shoebox needs (the measured decay
        # comes out ~30-50 % longer), so correct the requested RT60 by the measured ratio until it lands.
        request = wanted
        for _ in range(5):
            rir = _finish(_simulate(dims, request, src, mic, sample_rate), sample_rate)
            measured = estimate_rt60(rir, sample_rate)
            if lo <= measured <= hi:
                rirs.append(rir)
                break
            request = float(np.clip(request * wanted / measured, 0.05, 2.0))
    return tuple(rirs)


def _cache_file(cache_dir: pathlib.Path, key: _BankKey) -> pathlib.Path:
    tag = hashlib.sha256(repr((_CACHE_VERSION, BANK_SIZE, key)).encode()).hexdigest()[:16]
    return cache_dir / f"rirs-{key[0]}-{key[1]}-{key[4]}hz-{tag}.npz"


def rir_bank(purpose: str, severity: str, rt60_range: tuple[float, float],
             distance_range: tuple[float, float], sample_rate: int,
             cache_dir: pathlib.Path | None = None) -> tuple[FloatArray, ...]:
    """The RIR bank for one purpose and severity: unit-energy float32 RIRs at ``sample_rate`` Hz.

    ``rt60_range`` is in seconds, ``distance_range`` (speaker to mic) in metres. Every RIR's RT60, as
    :func:`estimate_rt60` measures it, lies inside ``rt60_range``.
    """
    _check_purpose(purpose)
    key = (purpose, severity, rt60_range, distance_range, sample_rate)
    with _bank_lock:
        if key in _banks:
            return _banks[key]
        path = _cache_file(cache_dir, key) if cache_dir is not None else None
        if path is not None and path.exists():
            with np.load(path) as data:
                bank = tuple(data[f"rir{i}"].astype(np.float32) for i in range(len(data.files)))
        else:
            bank = _generate(purpose, severity, rt60_range, distance_range, sample_rate)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                # Write-then-rename so parallel trainer processes never read a half-written bank.
                tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
                np.savez(tmp, **{f"rir{i}": r for i, r in enumerate(bank)})
                os.replace(tmp, path)
        _banks[key] = bank
        return bank
