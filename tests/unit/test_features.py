"""MFCC: our frames equal python_speech_features', and streaming equals batch for any chunking."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import python_speech_features as psf

from edge.features import StreamingMfcc, complete_frames, mfcc, normalize_window, window_starts
from edge.spec import FeatureSpec

SPEC = FeatureSpec(labels=("a", "b"))
SR = SPEC.sample_rate


def _music_like(seconds: float, seed: int = 0) -> np.ndarray:
    """Harmonic tones with an amplitude envelope plus noise: richer than white noise, deterministic."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    x = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((220.0, 330.0, 440.0, 880.0), start=1))
    x = x * (0.5 + 0.5 * np.sin(2 * np.pi * 0.7 * t)) + 0.05 * rng.standard_normal(t.size)
    return (0.2 * x).astype(np.float32)


def test_batch_mfcc_matches_python_speech_features_without_warnings() -> None:
    x = _music_like(4.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # psf warns when frames would be truncated: we must not trigger it
        ours = mfcc(x, SPEC)
        ref = psf.mfcc(
            x,
            SR,
            winlen=SPEC.win_length / SR,
            winstep=SPEC.hop_length / SR,
            numcep=SPEC.n_mfcc,
            nfilt=SPEC.n_mels,
            nfft=SPEC.n_fft,
            preemph=SPEC.preemph,
            ceplifter=SPEC.ceplifter,
            winfunc=lambda n: np.hanning(n + 1)[:-1],
        )
    assert ours.shape == (complete_frames(x.size, SPEC), 13)
    assert ref.shape[0] == ours.shape[0] + 1, "psf keeps one zero-padded partial frame; we drop it"
    err = float(np.abs(ours - ref[: ours.shape[0]]).max())
    assert err < 1e-4, f"max abs difference to psf: {err:.2e}"


@pytest.mark.parametrize("spec", [SPEC, SPEC.with_updates(mel_floor_db=40.0)], ids=["psf", "mel floor"])
def test_streaming_in_random_chunks_equals_batch(spec: FeatureSpec) -> None:
    x = _music_like(12.0, seed=1)
    batch = mfcc(x, spec)
    rng = np.random.default_rng(42)
    stream = StreamingMfcc(spec)
    pieces, i = [], 0
    sizes = []
    while i < x.size:
        n = int(rng.choice([1, 2, 7, 511, 512, 513, 2048, 4096, 22050, int(rng.integers(1, SR))]))
        sizes.append(n)
        pieces.append(stream.push(x[i : i + n]))
        i += n
    streamed = np.concatenate(pieces)
    assert streamed.shape == batch.shape, f"{streamed.shape} vs {batch.shape} after {len(sizes)} chunks"
    err = float(np.abs(streamed - batch).max())
    assert err <= 1e-5, f"max abs difference streaming vs batch: {err:.2e}"
    window = stream.latest_window()
    assert window is not None
    np.testing.assert_array_equal(window, batch[-spec.frames_per_window :])


def test_latest_window_appears_only_after_a_full_window_and_wraps_the_ring() -> None:
    stream = StreamingMfcc(SPEC, capacity=SPEC.frames_per_window + 5)
    x = _music_like(20.0, seed=2)
    stream.push(x[: SPEC.window_span_samples - 1])
    assert stream.latest_window() is None
    batch = mfcc(x, SPEC)
    for start in range(SPEC.window_span_samples - 1, x.size, 3001):
        stream.push(x[start : start + 3001])
        n = stream.frames_total
        window = stream.latest_window()
        assert window is not None and not window.flags.writeable
        np.testing.assert_array_equal(window, batch[n - SPEC.frames_per_window : n])


def test_reset_forgets_audio_and_pre_emphasis_state() -> None:
    x = _music_like(4.0, seed=3)
    stream = StreamingMfcc(SPEC)
    stream.push(_music_like(5.0, seed=9))
    stream.reset()
    np.testing.assert_array_equal(stream.push(x), mfcc(x, SPEC))


def test_window_starts_step_by_hop() -> None:
    assert list(window_starts(126, SPEC)) == [0]
    assert list(window_starts(125, SPEC)) == []
    assert list(window_starts(126 + 86, SPEC)) == [0, 43, 86]
    assert list(window_starts(130, SPEC, hop_frames=2)) == [0, 2, 4]


def test_cepstral_mean_normalisation_makes_windows_level_invariant() -> None:
    spec = SPEC.with_updates(cmn=True)
    x = _music_like(3.0, seed=4)
    loud = mfcc(x, spec)[: spec.frames_per_window]
    quiet = mfcc(x * 10 ** (-30 / 20), spec)[: spec.frames_per_window]
    raw_gap = float(np.abs(loud[:, 0] - quiet[:, 0]).mean())
    assert raw_gap > 5, f"c0 (log energy) should move with level; moved {raw_gap:.2f}"
    gap = float(np.abs(normalize_window(loud, spec) - normalize_window(quiet, spec)).max())
    assert gap < 1e-3, f"after CMN a 30 dB level change still moves features by {gap:.2e}"
    no_cmn = float(np.abs(normalize_window(loud, SPEC) - normalize_window(quiet, SPEC)).max())
    assert no_cmn > 5, f"without CMN the level change should show ({no_cmn:.2f})"


def test_normalize_window_applies_stats_into_out_and_leaves_input_alone() -> None:
    spec = SPEC.with_updates(mean=(1.0,) * 13, std=(2.0,) * 13)
    frames = np.full(spec.input_shape, 5.0, dtype=np.float32)
    out = np.empty(spec.input_shape, dtype=np.float32)
    result = normalize_window(frames, spec, out=out)
    assert result is out
    np.testing.assert_allclose(out, 2.0)
    np.testing.assert_allclose(frames, 5.0)


@pytest.mark.parametrize("n", [0, 2047, 2048, 2559, 2560])
def test_complete_frames_counts_only_whole_frames(n: int) -> None:
    expected = 0 if n < 2048 else 1 + (n - 2048) // 512
    assert complete_frames(n, SPEC) == expected


def test_cepstral_variance_normalisation_undoes_a_compressed_spread() -> None:
    spec = SPEC.with_updates(cmn=True, cvn=True)
    frames = mfcc(_music_like(3.0, seed=5), spec)[: spec.frames_per_window]
    # Noise fills spectral valleys: each coefficient keeps its shape over time but with less spread.
    squeezed = frames.mean(axis=0) + 0.3 * (frames - frames.mean(axis=0))
    gap = float(np.abs(normalize_window(frames, spec) - normalize_window(squeezed, spec)).max())
    assert gap < 1e-3, f"CVN left a spread change of {gap:.2e}"
    out = normalize_window(frames, spec)
    np.testing.assert_allclose(out.std(axis=0), 1.0, rtol=1e-4)
    cmn_only = SPEC.with_updates(cmn=True)
    assert float(np.abs(normalize_window(frames, cmn_only) - normalize_window(squeezed, cmn_only)).max()) > 1.0


def test_cvn_keeps_a_constant_window_finite_and_zero() -> None:
    spec = SPEC.with_updates(cmn=True, cvn=True)
    flat = np.full(spec.input_shape, -36.0, dtype=np.float32)  # digital silence: every frame identical
    out = normalize_window(flat, spec)
    assert np.all(np.isfinite(out)) and not out.any()


def test_mel_floor_makes_a_band_limited_copy_look_like_the_original() -> None:
    from scipy import signal

    x = _music_like(3.0, seed=6) + 0.02 * np.random.default_rng(6).standard_normal(3 * SR).astype(np.float32)
    # A cheap speaker and mic across a room: 8th-order low-pass at 6 kHz, so the top mel bands fall ~80 dB.
    lowpassed = signal.sosfilt(signal.butter(8, 6000, fs=SR, output="sos"), x).astype(np.float32)
    gaps = {}
    for name, spec in (("psf", SPEC), ("floor", SPEC.with_updates(mel_floor_db=40.0))):
        a, b = mfcc(x, spec)[:, 1:], mfcc(lowpassed, spec)[:, 1:]  # c0 is the frame energy, untouched by the floor
        gaps[name] = float(np.abs(a - b).mean())
    assert gaps["floor"] < 0.6 * gaps["psf"], gaps  # measured: 35.3 -> 19.1
    # Without the floor the spec is psf's maths exactly (the floor is opt-in, old bundles unchanged).
    np.testing.assert_array_equal(mfcc(x, SPEC), mfcc(x, SPEC.with_updates(mel_floor_db=None)))
