"""The feedback-delay-network reverberation copies (trainer.augment.fdn) and their place among a clip's variants."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from scipy import signal

from trainer.augment.fdn import RT60_RANGE_S, FdnParams, draw_fdn_params, fdn_response, reverb_copy
from trainer.augment.rooms import estimate_rt60
from trainer.data.plan import aug_variants
from trainer.data.variants import variant_audio

RATES = (16000, 22050)


def _simulate(params: FdnParams, sample_rate: int) -> npt.NDArray[np.float64]:
    """The network run sample by sample, as its block diagram reads: an independent oracle for the frequency-domain
    solution (delay lines as circular buffers, the loop low-pass as a one-pole recursion)."""
    n = int(1.2 * params.rt60_s * sample_rate)
    delays = np.asarray(params.delays)
    gains = 10.0 ** (-3.0 * delays / (sample_rate * params.rt60_s))
    buffers = [np.zeros(d) for d in delays]
    heads = np.zeros(len(delays), dtype=int)
    smoothed = np.zeros(len(delays))
    out = np.zeros(n)
    for t in range(n):
        leaving = np.array([buffers[i][heads[i]] for i in range(len(delays))])
        smoothed = (1.0 - params.damp) * leaving + params.damp * smoothed
        out[t] = params.c @ leaving
        entering = params.feedback @ (gains * smoothed) + params.b * (t == 0)
        for i in range(len(delays)):
            buffers[i][heads[i]] = entering[i]
            heads[i] = (heads[i] + 1) % delays[i]
    return out


def _music_like(seconds: float, sample_rate: int, peak: float = 0.4) -> npt.NDArray[np.float32]:
    rng = np.random.default_rng(5)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    x = sum(np.sin(2 * np.pi * f * t) * (1 + np.sin(2 * np.pi * 1.5 * t + f)) for f in (196.0, 392.0, 1500.0))
    x = x + 0.05 * rng.standard_normal(len(t))
    return (peak * x / np.max(np.abs(x))).astype(np.float32)


def test_the_frequency_domain_response_is_the_network_run_sample_by_sample() -> None:
    rate = 8000  # the oracle is a Python loop: keep it short
    for seed in range(2):
        params = draw_fdn_params(rate, np.random.default_rng(seed))
        fast, slow = fdn_response(params, rate), _simulate(params, rate)
        assert fast.shape == slow.shape
        assert np.max(np.abs(fast - slow)) < 1e-6 * np.max(np.abs(slow))
        assert np.all(np.abs(fast[: params.delays[0]]) < 1e-6)  # nothing leaves before the shortest line's delay


@pytest.mark.parametrize("rate", RATES)
def test_responses_ring_for_their_rt60_and_the_treble_dies_first(rate: int) -> None:
    low_sos = signal.butter(4, 300.0, "lowpass", fs=rate, output="sos")
    high_sos = signal.butter(4, 4000.0, "highpass", fs=rate, output="sos")
    for seed in range(8):
        params = draw_fdn_params(rate, np.random.default_rng(seed))
        assert RT60_RANGE_S[0] <= params.rt60_s <= RT60_RANGE_S[1]
        assert len(set(params.delays)) == len(params.delays)
        assert np.allclose(params.feedback @ params.feedback.T, np.eye(len(params.delays)))
        response = fdn_response(params, rate)
        measured = estimate_rt60(response, rate)
        # The loop low-pass takes its share of the decay: the broadband T20 lands at 0.6-1.0 of the gains' RT60.
        assert 0.6 * params.rt60_s <= measured <= 1.0 * params.rt60_s, (seed, params.rt60_s, measured)
        low, high = (estimate_rt60(signal.sosfilt(sos, response), rate) for sos in (low_sos, high_sos))
        assert low > 1.1 * high, f"seed {seed}: bass {low:.3f} s should ring longer than treble {high:.3f} s"


@pytest.mark.parametrize("rate", RATES)
def test_a_copy_is_seeded_bounded_and_mixes_the_room_at_its_drawn_ratio(rate: int) -> None:
    clip = _music_like(3.0, rate, peak=0.2)
    drawn, mixed = [], 0
    for seed in range(6):
        out = reverb_copy(clip, rate, np.random.default_rng(seed))
        assert out.dtype == np.float32 and out.shape == clip.shape and float(np.max(np.abs(out))) <= 1.0
        assert np.array_equal(out, reverb_copy(clip, rate, np.random.default_rng(seed)))
        params = draw_fdn_params(rate, np.random.default_rng(seed))  # the draw reverb_copy makes first
        wet = out.astype(np.float64) - clip
        if float(np.max(np.abs(out))) < 0.9:  # not renormalised: the wet part is exactly what was mixed in
            ratio_db = 10 * np.log10(np.mean(clip.astype(np.float64) ** 2) / np.mean(wet**2))
            assert ratio_db == pytest.approx(params.drr_db, abs=0.05)
            mixed += 1
        drawn.append(params.drr_db)
    assert mixed >= 3  # a quiet clip mostly stays under full scale: the ratio was checked
    assert max(drawn) - min(drawn) > 2.0  # the ratio is drawn, not fixed


def test_a_loud_copy_is_brought_back_under_full_scale() -> None:
    rate = 16000
    clip = _music_like(2.0, rate, peak=0.99)
    outs = [reverb_copy(clip, rate, np.random.default_rng(seed)) for seed in range(4)]
    assert all(float(np.max(np.abs(o))) <= 0.9 + 1e-6 for o in outs)
    assert any(float(np.max(np.abs(o))) == pytest.approx(0.9, abs=1e-6) for o in outs)


def test_nan_empty_and_silent_input() -> None:
    rate = 16000
    assert reverb_copy(np.zeros(0, np.float32), rate, np.random.default_rng(0)).shape == (0,)
    silent = reverb_copy(np.zeros(rate, np.float32), rate, np.random.default_rng(0))
    assert not silent.any()
    holes = _music_like(1.0, rate)
    holes[100:200] = np.nan
    assert np.isfinite(reverb_copy(holes, rate, np.random.default_rng(0))).all()


def test_a_30s_copy_is_fast() -> None:
    rate = 22050
    clip = _music_like(30.0, rate)
    # CPU time, not wall time: on a shared 2-core box the wall clock measures other jobs (see test_degrade).
    start = time.process_time()
    reverb_copy(clip, rate, np.random.default_rng(0))
    assert time.process_time() - start < 2.0


def test_reverb_variants_are_training_copies_seeded_by_the_clip(tmp_path: Path) -> None:
    assert aug_variants(1, ["typical"], noise_copies=1, reverb_copies=2) == ["aug/0", "noise/0", "reverb/0", "reverb/1"]
    assert aug_variants(1, [], noise_copies=1, reverb_copies=2) == []  # the room chain off: no copies at all
    rate = 16000
    clip = _music_like(2.0, rate)
    first = variant_audio(clip, rate, "ab" * 32, "reverb/0", tmp_path)
    assert np.array_equal(first, variant_audio(clip, rate, "ab" * 32, "reverb/0", tmp_path))
    assert not np.array_equal(first, variant_audio(clip, rate, "ab" * 32, "reverb/1", tmp_path))
    assert not np.array_equal(first, variant_audio(clip, rate, "cd" * 32, "reverb/0", tmp_path))
    with pytest.raises(ValueError, match="reverb/x"):
        variant_audio(clip, rate, "ab" * 32, "reverb/x", tmp_path)
