"""Real-signal tests of the room chain (trainer.augment: degrade, rooms, noises)."""

from __future__ import annotations

import pathlib
import time

import numpy as np
import numpy.typing as npt
import pytest

from trainer.augment import noises, rooms
from trainer.augment.degrade import (
    SEVERITIES,
    add_noise_at_snr,
    agc,
    augment,
    band_limit,
    change_level,
    degrade,
    estimate_rt60,
    measure_snr_db,
    resample_round_trip,
    rir_bank_for,
    severity_config,
    soft_clip,
)

SR = 22050
GTZAN = pathlib.Path("/work/shared/gtzan")
F32 = npt.NDArray[np.float32]


def _music_like(seconds: float, seed: int = 0) -> F32:
    """A decaying-note melody over pink-ish noise: broadband, with onsets, peak about 0.5."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    notes = np.zeros_like(t)
    seg = np.arange(SR) / SR  # each note rings for 1 s (down 52 dB by then)
    for start in range(0, len(t), SR // 4):
        f0 = 110.0 * 2 ** (rng.integers(0, 24) / 12)
        n = min(SR, len(t) - start)
        note = np.exp(-seg[:n] * 6.0) * sum(np.sin(2 * np.pi * k * f0 * seg[:n]) / k for k in range(1, 5))
        notes[start : start + n] += note
    noise = noises.colored_noise(len(t), SR, rng, 1.0, 0.0)
    x = notes / np.max(np.abs(notes)) + 0.05 * noise
    out: F32 = (0.5 * x / np.max(np.abs(x))).astype(np.float32)
    return out


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return tmp_path_factory.mktemp("degrade-cache")


@pytest.fixture(scope="module")
def clip() -> F32:
    return _music_like(5.0)


def test_bad_severity_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="mild, typical, harsh"):
        severity_config("brutal")
    with pytest.raises(ValueError, match="valid severities"):
        degrade(np.zeros(100, np.float32), SR, "Typical", 0)
    with pytest.raises(ValueError, match="valid purposes"):
        degrade(np.zeros(100, np.float32), SR, "typical", 0, purpose="test")


@pytest.mark.parametrize("severity", SEVERITIES)
def test_output_shape_dtype_range_and_determinism(severity: str, clip: F32, cache_dir: pathlib.Path) -> None:
    a = degrade(clip, SR, severity, 7, cache_dir=cache_dir)
    b = degrade(clip.copy(), SR, severity, 7, cache_dir=cache_dir)
    c = degrade(clip, SR, severity, 8, cache_dir=cache_dir)
    t = degrade(clip, SR, severity, 7, purpose="train", cache_dir=cache_dir)
    assert a.dtype == np.float32 and a.shape == clip.shape, f"{a.dtype} {a.shape} vs {clip.shape}"
    assert np.all(np.isfinite(a)), "NaN/inf in output"
    assert float(np.max(np.abs(a))) <= 1.0, f"peak {float(np.max(np.abs(a))):.4f}"
    assert np.array_equal(a, b), "same seed must be bit-identical"
    assert not np.allclose(a, c), "different seed must differ"
    assert not np.allclose(a, t), "train and eval must differ"
    diff_db = 10 * np.log10(np.mean((a - clip) ** 2) / np.mean(clip**2))
    assert diff_db > -20, f"degradation barely changed the clip ({diff_db:.1f} dB residual)"


@pytest.mark.parametrize("purpose", ["eval", "train"])
@pytest.mark.parametrize("severity", SEVERITIES)
def test_each_bank_rir_rt60_in_severity_range(severity: str, purpose: str, cache_dir: pathlib.Path) -> None:
    lo, hi = severity_config(severity).rt60_s
    bank = rir_bank_for(severity, purpose, SR, cache_dir)
    assert len(bank) == rooms.BANK_SIZE[purpose]
    for rir in bank:
        rt60 = estimate_rt60(rir, SR)
        assert lo <= rt60 <= hi, f"{purpose}/{severity} RIR RT60 {rt60:.3f} s outside {lo}-{hi} s"
        assert int(np.argmax(np.abs(rir))) == 0, "direct path must be at sample 0"
        assert abs(float(np.sum(rir.astype(np.float64) ** 2)) - 1.0) < 1e-3, "RIR not unit energy"


def test_estimate_rt60_on_synthetic_exponential_decay() -> None:
    rt60 = 0.5
    t = np.arange(int(1.0 * SR)) / SR
    rir = np.random.default_rng(1).standard_normal(len(t)) * 10 ** (-3 * t / rt60)
    assert abs(estimate_rt60(rir, SR) - rt60) < 0.05, f"estimated {estimate_rt60(rir, SR):.3f} s"


def test_train_and_eval_banks_share_no_rir(cache_dir: pathlib.Path) -> None:
    eval_rirs = [r for s in SEVERITIES for r in rir_bank_for(s, "eval", SR, cache_dir)]
    train_rirs = [r for s in SEVERITIES for r in rir_bank_for(s, "train", SR, cache_dir)]
    for e in eval_rirs:
        for tr in train_rirs:
            n = min(len(e), len(tr))
            corr = float(np.dot(e[:n], tr[:n]))  # both unit energy: 1.0 would be the same RIR
            assert corr < 0.99, f"train/eval RIRs nearly identical (correlation {corr:.3f})"


def test_rir_bank_round_trips_through_disk_cache(cache_dir: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    built = rir_bank_for("mild", "eval", SR, cache_dir)
    assert list((cache_dir / "rirs").glob("rirs-eval-mild-*.npz")), "no bank file written"
    monkeypatch.setattr(rooms, "_banks", {})  # forget the in-process copy so the disk file is read
    loaded = rir_bank_for("mild", "eval", SR, cache_dir)
    assert all(np.array_equal(a, b) for a, b in zip(built, loaded, strict=True))


def test_babble_voices_and_texts_are_disjoint(cache_dir: pathlib.Path) -> None:
    assert not {v for v, _, _ in noises.VOICES["eval"]} & {v for v, _, _ in noises.VOICES["train"]}
    assert not set(noises.TEXTS["eval"]) & set(noises.TEXTS["train"])
    eval_bank = noises.babble_bank("eval", SR, cache_dir / "babble")
    assert len(eval_bank) == len(noises.VOICES["eval"])
    for speech in eval_bank:
        assert len(speech) > 5 * SR, f"babble utterance only {len(speech) / SR:.1f} s"
        assert abs(float(np.sqrt(np.mean(speech.astype(np.float64) ** 2))) - 1.0) < 1e-3


@pytest.mark.parametrize("severity", SEVERITIES)
def test_noise_stage_hits_target_snr(severity: str, clip: F32, cache_dir: pathlib.Path) -> None:
    target = severity_config(severity).snr_db
    rng = np.random.default_rng(3)
    noise = noises.room_noise(len(clip), SR, rng, 3, "eval", cache_dir / "babble")
    noisy = add_noise_at_snr(clip, noise, target)
    snr = measure_snr_db(clip, noisy)
    assert abs(snr - target) < 1.0, f"measured SNR {snr:.2f} dB, target {target} dB"


def test_noise_components_are_seeded() -> None:
    a = noises.colored_noise(SR, SR, np.random.default_rng(5), 1.0, 0.5)
    b = noises.colored_noise(SR, SR, np.random.default_rng(5), 1.0, 0.5)
    c = noises.colored_noise(SR, SR, np.random.default_rng(6), 1.0, 0.5)
    assert np.array_equal(a, b) and not np.allclose(a, c)
    spec = np.abs(np.fft.rfft(noises.colored_noise(4 * SR, SR, np.random.default_rng(5), 1.0, 0.0))) ** 2
    freqs = np.fft.rfftfreq(4 * SR, 1 / SR)
    low = spec[(freqs > 100) & (freqs < 200)].mean()
    high = spec[(freqs > 1000) & (freqs < 2000)].mean()
    slope_db = 10 * np.log10(low / high)
    assert 7 < slope_db < 13, f"pink noise fell {slope_db:.1f} dB per decade, expected ~10"
    hum = noises.mains_hum(SR, SR, np.random.default_rng(0))
    peak_hz = float(np.fft.rfftfreq(SR, 1 / SR)[np.argmax(np.abs(np.fft.rfft(hum)))])
    assert peak_hz % 50 == 0 or peak_hz % 60 == 0, f"hum peak at {peak_hz} Hz, not a mains harmonic"


@pytest.mark.parametrize("severity", SEVERITIES)
def test_band_limit_removes_out_of_band_energy(severity: str) -> None:
    cfg = severity_config(severity)
    white = np.random.default_rng(0).standard_normal(4 * SR).astype(np.float32) * 0.1
    # The widest pass band this severity can draw: the least filtering it ever does.
    out = band_limit(white, SR, cfg.highpass_hz[0], cfg.lowpass_hz[1])
    freqs = np.fft.rfftfreq(len(white), 1 / SR)
    spec_in, spec_out = np.abs(np.fft.rfft(white)) ** 2, np.abs(np.fft.rfft(out)) ** 2

    def drop_db(lo: float, hi: float) -> float:
        band = (freqs >= lo) & (freqs < hi)
        return float(10 * np.log10(spec_in[band].sum() / spec_out[band].sum()))

    above, below, mid = drop_db(9500, 11000), drop_db(10, 40), drop_db(500, 3000)
    assert above > 25, f"{severity}: only {above:.1f} dB removed above 9.5 kHz"
    assert below > 20, f"{severity}: only {below:.1f} dB removed below 40 Hz"
    assert abs(mid) < 1, f"{severity}: pass band changed by {mid:.1f} dB"


def test_level_change_and_soft_clip_stay_within_full_scale(clip: F32) -> None:
    loud = change_level(clip * 2.0, 6.0)
    assert float(np.max(np.abs(loud))) <= 1.0, f"peak {float(np.max(np.abs(loud))):.4f}"
    quiet = change_level(clip, -30.0)
    ratio_db = 20 * np.log10(np.max(np.abs(quiet)) / np.max(np.abs(clip)))
    assert abs(ratio_db + 30) < 0.01, f"-30 dB change measured {ratio_db:.2f} dB"
    assert np.array_equal(soft_clip(clip), clip), "soft clip must be identity below full scale"
    extreme = soft_clip(np.array([-50.0, -1.5, 0.5, 1.5, 50.0]))
    assert float(np.max(np.abs(extreme))) <= 1.0 and extreme[2] == np.float32(0.5), f"{extreme}"
    assert np.all(np.diff(extreme) > 0), f"soft clip must stay monotonic: {extreme}"


def test_agc_raises_quiet_audio_and_pumps_after_a_loud_burst() -> None:
    t = np.arange(6 * SR) / SR
    tone = np.sin(2 * np.pi * 440 * t)
    x = 0.01 * tone  # -43 dBFS
    x[2 * SR : 3 * SR] = 0.9 * tone[2 * SR : 3 * SR]  # one loud second
    y = agc(x.astype(np.float32), SR, attack_s=0.01, release_s=1.0, max_gain_db=25.0)

    def level(a: float, b: float) -> float:
        seg = y[int(a * SR) : int(b * SR)].astype(np.float64)
        return float(20 * np.log10(np.sqrt(np.mean(seg**2))))

    before, right_after, recovered = level(1.5, 2.0), level(3.05, 3.25), level(5.5, 6.0)
    assert before > -43 + 20, f"quiet part only reached {before:.1f} dBFS"
    assert right_after < before - 10, f"no ducking after the burst ({right_after:.1f} vs {before:.1f} dBFS)"
    assert recovered > right_after + 10, f"gain did not recover ({recovered:.1f} dBFS)"
    assert float(np.max(np.abs(y))) <= 1.0


@pytest.mark.parametrize("capture_rate", [44100, 48000])
def test_resample_round_trip_keeps_1khz_tone(capture_rate: int) -> None:
    t = np.arange(2 * SR) / SR
    tone = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    out = resample_round_trip(tone, SR, capture_rate)
    assert out.shape == tone.shape and out.dtype == np.float32
    spec = np.abs(np.fft.rfft(out * np.hanning(len(out))))
    peak = float(np.fft.rfftfreq(len(out), 1 / SR)[np.argmax(spec)])
    assert abs(peak - 1000) < 1, f"tone moved to {peak:.1f} Hz"
    mid = slice(SR // 2, 3 * SR // 2)  # soxr edges ramp; compare the steady middle
    err_db = measure_snr_db(tone[mid], out[mid])
    assert err_db > 40, f"round trip distorted the tone (SNR {err_db:.1f} dB)"


def test_augment_is_seeded_and_sometimes_nearly_clean(clip: F32, cache_dir: pathlib.Path) -> None:
    short = clip[: SR]
    a = [augment(short, SR, np.random.default_rng(i), cache_dir=cache_dir) for i in range(24)]
    b = [augment(short, SR, np.random.default_rng(i), cache_dir=cache_dir) for i in range(24)]
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert all(x.shape == short.shape and x.dtype == np.float32 and np.max(np.abs(x)) <= 1.0 for x in a)
    # A nearly-clean draw is only a gain change: it correlates ~perfectly with the input.
    corr = [abs(float(np.corrcoef(short, x)[0, 1])) for x in a]
    clean = sum(c > 0.999 for c in corr)
    assert 2 <= clean <= 12, f"{clean}/24 nearly-clean draws (expected ~25 %)"


def test_silent_and_empty_input(cache_dir: pathlib.Path) -> None:
    silent = degrade(np.zeros(SR, np.float32), SR, "typical", 1, cache_dir=cache_dir)
    assert np.all(np.isfinite(silent)) and silent.shape == (SR,)
    assert degrade(np.zeros(0, np.float32), SR, "harsh", 1).shape == (0,)


def test_degrade_30s_clip_is_fast(cache_dir: pathlib.Path) -> None:
    x = _music_like(30.0, seed=2)
    degrade(x, SR, "harsh", 0, cache_dir=cache_dir)  # warm banks
    # CPU time, not wall time: on a 2-core box shared by other jobs this process gets a fraction of a core and
    # the wall clock measures the others' work. The chain is single-threaded, so on a quiet machine both agree.
    start = time.process_time()
    degrade(x, SR, "harsh", 1, cache_dir=cache_dir)
    elapsed = time.process_time() - start
    # Budget is ~0.3 s on a quiet machine; allow slack for a slower CPU.
    assert elapsed < 1.0, f"degrading 30 s took {elapsed:.3f} s of CPU"


def test_real_gtzan_clip_degrades_at_every_severity(cache_dir: pathlib.Path) -> None:
    sf = pytest.importorskip("soundfile")
    if not (GTZAN / "manifest.csv").exists():
        pytest.skip(f"GTZAN subset not found at {GTZAN}")
    audio, rate = sf.read(GTZAN / "jazz" / "jazz.00000.ogg", dtype="float32")
    assert rate == SR
    residual = []
    for severity in SEVERITIES:
        y = degrade(audio, rate, severity, 11, cache_dir=cache_dir)
        assert y.shape == audio.shape and np.all(np.isfinite(y)) and np.max(np.abs(y)) <= 1.0
        residual.append(measure_snr_db(audio / np.sqrt(np.mean(audio**2)), y / np.sqrt(np.mean(y**2))))
    assert residual[0] > residual[2], f"harsh should be further from clean than mild: {residual}"
