"""Real-signal tests of the evaluation-only unseen family and the training-side wide noise augmentation."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import numpy.typing as npt
import pytest
from scipy import signal

from trainer.augment import noise_aug
from trainer.augment.degrade import measure_snr_db
from trainer.augment.noise_aug import NoiseCopyParams, draw_noise_params, noise_copy, wide_noise
from trainer.augment.rooms import estimate_rt60
from trainer.augment.unseen import UNSEEN_CONDITIONS, synthetic_rir, unseen

F32 = npt.NDArray[np.float32]
RATES = (16000, 22050)
NOISE_SNR_DB = {"unseen_hiss": (15.0, 25.0), "unseen_fan": (8.0, 18.0), "unseen_hum": (10.0, 20.0)}


def _music_like(seconds: float, sample_rate: int, seed: int = 0) -> F32:
    """Sines at 220/330/1000/2500 Hz with a 2 Hz swell, plus a little white noise; peak about 0.4."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    tones = sum(a * np.sin(2 * np.pi * f * t) for a, f in ((1.0, 220.0), (0.7, 330.0), (0.5, 1000.0), (0.3, 2500.0)))
    x = tones * (0.75 + 0.25 * np.sin(2 * np.pi * 2.0 * t)) + 0.05 * rng.standard_normal(len(t))
    out: F32 = (0.4 * x / np.max(np.abs(x))).astype(np.float32)
    return out


def _tone(freq_hz: float, seconds: float, sample_rate: int, amplitude: float = 0.3) -> F32:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    out: F32 = (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)
    return out


def _amplitude_at(x: F32, freq_hz: float, sample_rate: int) -> float:
    """Amplitude of the ``freq_hz`` component, by projection on the second half (past filter transients)."""
    seg = x[len(x) // 2 :].astype(np.float64)
    t = np.arange(len(x) // 2, len(x)) / sample_rate
    phase = 2 * np.pi * freq_hz * t
    return float(2 * np.hypot(np.mean(seg * np.sin(phase)), np.mean(seg * np.cos(phase))))


@pytest.fixture(scope="module", params=RATES)
def rate_and_clip(request: pytest.FixtureRequest) -> tuple[int, F32]:
    rate = int(request.param)
    return rate, _music_like(3.0, rate)


def test_conditions_and_unknown_condition_names_the_valid_ones() -> None:
    assert UNSEEN_CONDITIONS == ("unseen_hiss", "unseen_fan", "unseen_hum", "unseen_reverb", "unseen_band",
                                 "unseen_room")
    with pytest.raises(ValueError, match="unseen_hiss, unseen_fan, unseen_hum, unseen_reverb, unseen_band, "
                                         "unseen_room") as err:
        unseen(np.zeros(100, np.float32), 16000, "typical", 0)
    assert "'typical'" in str(err.value)


@pytest.mark.parametrize("condition", UNSEEN_CONDITIONS)
def test_shape_dtype_range_and_determinism(condition: str, rate_and_clip: tuple[int, F32]) -> None:
    rate, clip = rate_and_clip
    a, b, other = unseen(clip, rate, condition, 7), unseen(clip, rate, condition, 7), unseen(clip, rate, condition, 8)
    assert a.shape == clip.shape and a.dtype == np.float32
    assert np.array_equal(a, b), "same seed must give identical output"
    assert not np.array_equal(a, other), "a different seed must give different output"
    assert np.all(np.isfinite(a)) and float(np.max(np.abs(a))) <= 1.0
    # Even the mildest draw (hiss at 25 dB) must leave a measurable change.
    assert measure_snr_db(clip, a) < 30.0, f"{condition} barely changed the clip"


def test_conditions_draw_independent_streams() -> None:
    clip = _music_like(1.0, 16000)
    noisy = [unseen(clip, 16000, c, 3) - clip for c in ("unseen_hiss", "unseen_fan", "unseen_hum")]
    corr = np.corrcoef(np.vstack(noisy))
    assert float(np.max(np.abs(corr[np.triu_indices(3, 1)]))) < 0.2, f"noise streams correlate: {corr}"


@pytest.mark.parametrize("condition", sorted(NOISE_SNR_DB))
def test_noise_conditions_hit_their_snr_range(condition: str) -> None:
    lo, hi = NOISE_SNR_DB[condition]
    measured = [measure_snr_db(clip, unseen(clip, rate, condition, seed))
                for rate in RATES for clip in [_music_like(3.0, rate)] for seed in range(6)]
    assert all(lo - 0.2 <= s <= hi + 0.2 for s in measured), f"{condition}: SNRs {np.round(measured, 2)}"
    assert max(measured) - min(measured) > 2.0, f"{condition}: SNR is not drawn per seed: {np.round(measured, 2)}"


def test_hum_is_a_100_or_120_hz_comb_not_50_or_60(rate_and_clip: tuple[int, F32]) -> None:
    rate, clip = rate_and_clip
    for seed in range(4):
        noise = (unseen(clip, rate, "unseen_hum", seed) - clip).astype(np.float64)
        f0 = max((100.0, 120.0), key=lambda f: _amplitude_at(noise.astype(np.float32), f, rate))
        amps = {f: _amplitude_at(noise.astype(np.float32), f, rate) for f in (50.0, 60.0, f0, 2 * f0, 3 * f0)}
        assert amps[f0] > 10 * max(amps[50.0], amps[60.0]), f"seed {seed}: {amps}"
        assert amps[2 * f0] > 0.05 * amps[f0] and amps[3 * f0] > 0.05 * amps[f0], f"seed {seed}: few harmonics {amps}"


def test_hiss_tilts_toward_high_frequencies() -> None:
    rate = 22050
    clip = _music_like(3.0, rate)
    noise = unseen(clip, rate, "unseen_hiss", 1).astype(np.float64) - clip
    freqs = np.fft.rfftfreq(len(noise), 1 / rate)
    power = np.abs(np.fft.rfft(noise)) ** 2
    low = power[(freqs > 4000) & (freqs < 5000)].mean()
    high = power[(freqs > 8000) & (freqs < 9000)].mean()
    assert 10 * np.log10(high / low) > 1.0, f"hiss not tilted up: {10 * np.log10(high / low):.2f} dB"


@pytest.mark.parametrize("rate", RATES)
def test_synthetic_rir_decays_at_its_rt60_and_keeps_the_direct_path(rate: int) -> None:
    low_sos = signal.butter(4, 200.0, "lowpass", fs=rate, output="sos")
    high_sos = signal.butter(4, 5000.0, "highpass", fs=rate, output="sos")
    for rt60 in (0.4, 0.65, 0.9):
        for seed in range(3):
            rir = synthetic_rir(rate, np.random.default_rng(seed), rt60)
            assert rir.dtype == np.float32 and rir[0] == 1.0 and float(np.max(np.abs(rir))) == 1.0
            measured = estimate_rt60(rir, rate)
            assert 0.85 * rt60 <= measured <= 1.15 * rt60, f"asked {rt60} s, measured {measured:.3f} s"
            low, high = (estimate_rt60(signal.sosfilt(sos, rir), rate) for sos in (low_sos, high_sos))
            assert low > 1.2 * high, f"low band {low:.3f} s should ring longer than high band {high:.3f} s"


def test_reverb_condition_of_a_click_rings_for_its_rt60() -> None:
    rate = 16000
    click = np.zeros(2 * rate, np.float32)
    click[0] = 0.5
    for seed in range(4):
        wet = unseen(click, rate, "unseen_reverb", seed)
        assert abs(float(wet[0]) - 0.5) < 1e-6, "direct path must keep its level"
        rt60 = estimate_rt60(wet, rate)
        assert 0.4 * 0.85 <= rt60 <= 0.9 * 1.15, f"seed {seed}: RT60 {rt60:.3f} s"


@pytest.mark.parametrize("rate", RATES)
def test_band_condition_cuts_100hz_and_7khz(rate: int) -> None:
    for seed in range(5):
        amp = {f: _amplitude_at(unseen(_tone(f, 2.0, rate), rate, "unseen_band", seed), f, rate)
               for f in (100.0, 1000.0, 7000.0)}
        ref = amp[1000.0]
        assert abs(20 * np.log10(ref / 0.3)) < 2.0, f"seed {seed}: 1 kHz changed level: {amp}"
        for f in (100.0, 7000.0):
            drop = 20 * np.log10(ref / max(amp[f], 1e-12))
            assert drop >= 20.0, f"seed {seed}, rate {rate}: {f:.0f} Hz only {drop:.1f} dB below 1 kHz"


def test_nan_empty_and_silent_input() -> None:
    rate = 16000
    for condition in UNSEEN_CONDITIONS:
        silent = unseen(np.zeros(rate, np.float32), rate, condition, 1)
        assert silent.shape == (rate,) and np.all(np.isfinite(silent)) and float(np.max(np.abs(silent))) <= 1.0
        holed = _music_like(1.0, rate)
        holed[100:200] = np.nan
        assert np.all(np.isfinite(unseen(holed, rate, condition, 1))), condition
        assert unseen(np.zeros(0, np.float32), rate, condition, 1).shape == (0,)
    quiet = noise_copy(np.zeros(rate, np.float32), rate, np.random.default_rng(0))
    assert quiet.shape == (rate,) and np.all(np.isfinite(quiet)) and float(np.max(np.abs(quiet))) <= 1.0
    assert noise_copy(np.zeros(0, np.float32), rate, np.random.default_rng(0)).shape == (0,)


def test_noise_copy_is_seeded_bounded_and_spreads_its_snr(rate_and_clip: tuple[int, F32],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    rate, clip = rate_and_clip
    real = [noise_copy(clip, rate, np.random.default_rng(seed)) for seed in range(40)]
    drawn = [draw_noise_params(rate, np.random.default_rng(seed)) for seed in range(40)]
    for seed, out in enumerate(real):
        assert np.array_equal(out, noise_copy(clip, rate, np.random.default_rng(seed))), f"seed {seed} not repeatable"
        assert out.shape == clip.shape and out.dtype == np.float32 and float(np.max(np.abs(out))) <= 1.0
    assert not np.array_equal(real[0], real[1])
    assert 0.1 < np.mean([p.highpass_hz is not None or p.lowpass_hz is not None for p in drawn]) < 0.5
    assert 0.3 < np.mean([p.level_db is not None for p in drawn]) < 0.7

    # Band limit and level change alter the music too, so the SNR is measured with those stages switched off
    # (same draws, same noise): the patched draw is the real one minus those stages.
    def bare_draw(sample_rate: int, rng: np.random.Generator) -> NoiseCopyParams:
        return dataclasses.replace(draw_noise_params(sample_rate, rng), highpass_hz=None, lowpass_hz=None,
                                   level_db=None)

    monkeypatch.setattr(noise_aug, "draw_noise_params", bare_draw)
    measured = []
    for seed, params in enumerate(drawn):
        bare = noise_copy(clip, rate, np.random.default_rng(seed))
        snr = measure_snr_db(clip, bare)
        assert abs(snr - params.snr_db) < 0.1, f"seed {seed}: drawn {params.snr_db:.2f} dB, measured {snr:.2f} dB"
        measured.append(snr)
        if params == bare_draw(rate, np.random.default_rng(seed)):
            assert np.array_equal(bare, real[seed]), f"seed {seed}: switching off absent stages changed the output"
    assert min(measured) < 8.0 and max(measured) > 22.0, f"SNRs {np.round(sorted(measured), 1)}"


@pytest.mark.parametrize("alpha", [-2.0, -1.0, 0.0])
def test_wide_noise_has_the_asked_spectral_slope(alpha: float) -> None:
    rate = 22050
    noise = wide_noise(4 * rate, rate, np.random.default_rng(5), alpha)
    assert noise.dtype == np.float32 and abs(float(np.sqrt(np.mean(noise.astype(np.float64) ** 2))) - 1.0) < 1e-3
    freqs, power = signal.welch(noise, rate, nperseg=4096)
    band = (freqs > 100) & (freqs < 5000)
    slope = float(np.polyfit(np.log10(freqs[band]), np.log10(power[band]), 1)[0])
    assert abs(slope - alpha) < 0.15, f"asked power slope {alpha}, measured {slope:.3f}"


def test_every_function_is_fast_on_a_30s_clip() -> None:
    rate = 22050
    clip = _music_like(30.0, rate, seed=2)
    # CPU time, not wall time: on a shared 2-core box the wall clock measures other jobs (see test_degrade).
    for condition in UNSEEN_CONDITIONS:
        start = time.process_time()
        unseen(clip, rate, condition, 0)
        elapsed = time.process_time() - start
        assert elapsed < 1.0, f"{condition} took {elapsed:.3f} s of CPU for 30 s"
    start = time.process_time()
    noise_copy(clip, rate, np.random.default_rng(0))
    assert time.process_time() - start < 1.0
