"""Training-side reverberation copies from a feedback delay network (FDN): a third way to build a room.

Why: the head learnt the training chain's image-source rooms (``rooms.py``) well and lost accuracy on
reverberation built differently (the evaluation-only ``unseen_reverb``). A head that has heard rooms made
by two unrelated algorithms has less reason to learn either one's fingerprints. Measured with two of these copies
per clip on top of the shipped copies, by 3 artist folds: unseen reverberation 67.6 -> 71.5 % clip macro over all
554 clips (up in every fold), 64.0 -> 68.6 in ``genre-train compare`` (genres only); the rest within a fold's spread.

The network (Jot's FDN): 8 delay lines of 23-67 ms (distinct lengths drawn per copy), fed back through a
random orthogonal matrix, each line's gain set for a broadband RT60 drawn from 0.3-0.9 s, and a one-pole
low-pass in every loop (coefficient 0.2-0.5) so the treble dies sooner, as it does off soft furnishings;
the low-pass shortens the measured T20 to ~0.8 of the drawn RT60. Its impulse response is computed in the
frequency domain, c^T (I - D(z) Q G LP(z))^-1 D(z) b on an FFT grid twice the response's length (the
wrapped tail is more than 120 dB down): ~0.1 s a copy instead of seconds in a per-sample loop.
The wet signal (the response starts at the shortest line's delay: no direct path in it) is scaled to the
dry signal's power times 10^(-DRR/10), DRR drawn from -3 to +6 dB, and added to the dry clip; a peak above
full scale is normalised to 0.9.

How it differs from the evaluation-only ``unseen_reverb`` (``unseen.py``), so that condition stays a fair
test: that is a unit direct path, a few discrete early reflections and a *noise* tail split into 4 bands
with their own decay; this is a recursive network whose echo density builds up from sparse echoes, with
modal colouring from its delay lengths and one smooth loop low-pass. Shared: both decay exponentially,
their RT60s and direct-to-reverberant ratios overlap (0.4-0.9 s, -4..+2 dB there).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.fft import irfft, next_fast_len
from scipy.signal import fftconvolve

from trainer.augment.degrade import mono64

__all__ = ["FdnParams", "draw_fdn_params", "fdn_response", "reverb_copy"]

FloatArray = npt.NDArray[np.float32]
AudioIn = npt.NDArray[np.floating[Any]]

N_LINES = 8
DELAY_RANGE_S = (0.023, 0.067)
RT60_RANGE_S = (0.3, 0.9)
DAMP_RANGE = (0.2, 0.5)
DRR_RANGE_DB = (-3.0, 6.0)
_TAIL_RT60S = 1.2  # the response is kept for 1.2 x RT60: 72 dB of broadband decay
_PEAK = 0.9


@dataclass(frozen=True)
class FdnParams:
    """One draw of :func:`reverb_copy`: the network and how loud its output is mixed."""

    rt60_s: float
    delays: tuple[int, ...]  # samples, ascending, distinct
    feedback: npt.NDArray[np.float64]  # orthogonal, N_LINES x N_LINES
    damp: float  # one-pole coefficient of the loop low-pass: more is darker
    b: npt.NDArray[np.float64]  # input gains (+-1)
    c: npt.NDArray[np.float64]  # output gains (+-1/sqrt(N_LINES))
    drr_db: float


def draw_fdn_params(sample_rate: int, rng: np.random.Generator) -> FdnParams:
    """The parameters :func:`reverb_copy` draws from ``rng`` (same order, same values)."""
    rt60_s = float(rng.uniform(*RT60_RANGE_S))
    lo, hi = (int(s * sample_rate) for s in DELAY_RANGE_S)
    delays = tuple(int(d) for d in np.sort(rng.choice(np.arange(lo, hi), N_LINES, replace=False)))
    q, r = np.linalg.qr(rng.standard_normal((N_LINES, N_LINES)))
    feedback = q * np.sign(np.diag(r))  # Haar-distributed orthogonal: a lossless mixing of the lines
    damp = float(rng.uniform(*DAMP_RANGE))
    b = rng.choice([-1.0, 1.0], N_LINES)
    c = rng.choice([-1.0, 1.0], N_LINES) / np.sqrt(N_LINES)
    drr_db = float(rng.uniform(*DRR_RANGE_DB))
    return FdnParams(rt60_s, delays, feedback, damp, b, c, drr_db)


def fdn_response(params: FdnParams, sample_rate: int) -> npt.NDArray[np.float64]:
    """The network's impulse response, 1.2 x RT60 long (sample 0 is the impulse going in)."""
    length = int(_TAIL_RT60S * params.rt60_s * sample_rate)
    n_fft = next_fast_len(2 * length, real=True)
    delays = np.asarray(params.delays, dtype=np.float64)
    gains = 10.0 ** (-3.0 * delays / (sample_rate * params.rt60_s))  # -60 dB per RT60 along each line
    omega = 2.0 * np.pi * np.arange(n_fft // 2 + 1) / n_fft  # the rfft grid
    z_inv = np.exp(-1j * omega)
    line = np.exp(-1j * np.outer(omega, delays))  # D(z): (bins, lines)
    low_pass = (1.0 - params.damp) / (1.0 - params.damp * z_inv)
    loop = line[:, :, None] * (params.feedback * gains[None, :])[None] * low_pass[:, None, None]
    through = np.linalg.solve(np.eye(len(delays))[None] - loop, (line * params.b[None, :])[:, :, None])[..., 0]
    response = irfft(through @ params.c, n_fft)[:length]
    return np.asarray(response, dtype=np.float64)


def reverb_copy(audio: AudioIn, sample_rate: int, rng: np.random.Generator) -> FloatArray:
    """A training copy of mono ``audio`` in an FDN room (see the module docstring).

    Deterministic given ``rng``'s state; float32 of the same length, within [-1, 1]; NaNs count as silence.
    """
    params = draw_fdn_params(sample_rate, rng)
    x = mono64(audio)
    if x.size == 0:
        return x.astype(np.float32)
    wet = fftconvolve(x, fdn_response(params, sample_rate))[: x.size]
    wet_power = float(np.mean(wet**2))
    if wet_power > 0.0:
        wet *= np.sqrt(float(np.mean(x**2)) / wet_power) * 10.0 ** (-params.drr_db / 20.0)
    y = x + wet
    peak = float(np.max(np.abs(y)))
    if peak > 1.0:
        y *= _PEAK / peak
    out: FloatArray = np.clip(y, -1.0, 1.0).astype(np.float32)
    return out
