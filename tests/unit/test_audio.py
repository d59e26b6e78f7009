"""Audio decoding: formats, mono mixdown, real resampling, and one typed error per bad file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from edge.audio import StreamResampler, load_audio, resample
from edge.errors import AudioDecodeError, UsageError

GTZAN = Path(__file__).resolve().parents[2].parent / "shared" / "gtzan"


def _tone(freq: float, rate: int, seconds: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _peak_hz(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return float(np.argmax(spectrum) * rate / x.size)


def test_a_440_hz_tone_at_48_khz_stays_440_hz_at_22050(tmp_path: Path) -> None:
    path = tmp_path / "tone48k.wav"
    sf.write(path, _tone(440.0, 48000, 2.0), 48000, subtype="PCM_16")
    y = load_audio(path, 22050)
    assert abs(y.size - 44100) <= 2, f"{y.size} samples for 2 s at 22050 Hz"
    peak = _peak_hz(y, 22050)
    assert abs(peak - 440.0) < 1.0, f"tone measured at {peak:.2f} Hz after resampling"


def test_stereo_is_mixed_to_mono(tmp_path: Path) -> None:
    left = _tone(1000.0, 22050, 1.0, amp=0.8)
    path = tmp_path / "stereo.flac"
    sf.write(path, np.stack([left, np.zeros_like(left)], axis=1), 22050)
    y = load_audio(path, 22050)
    assert y.ndim == 1
    assert abs(float(np.abs(y).max()) - 0.4) < 0.01, "mono mix should average the channels"


def test_au_files_as_in_gtzan_load(tmp_path: Path) -> None:
    path = tmp_path / "blues.00000.au"
    sf.write(path, _tone(300.0, 22050, 1.0), 22050, format="AU", subtype="PCM_16")
    y = load_audio(path, 22050)
    assert y.dtype == np.float32 and y.size == 22050


def test_gtzan_ogg_decodes() -> None:
    clip = GTZAN / "jazz" / "jazz.00001.ogg"
    if not clip.exists():
        pytest.skip(f"GTZAN subset not found at {GTZAN}")
    y = load_audio(clip, 22050)
    assert 29.0 < y.size / 22050 < 31.0 and np.isfinite(y).all()


def test_stream_resampler_keeps_the_tone_across_chunks() -> None:
    x = _tone(1000.0, 44100, 2.0)
    rs = StreamResampler(44100, 22050)
    out = np.concatenate([rs.process(x[i : i + 1000]) for i in range(0, x.size, 1000)] + [rs.process(x[:0], True)])
    assert abs(out.size - 44100) < 200, f"{out.size} samples out for 2 s"
    peak = _peak_hz(out[2000:], 22050)
    assert abs(peak - 1000.0) < 2.0, f"streamed tone at {peak:.1f} Hz"
    whole = resample(x, 44100, 22050)
    assert abs(whole.size - 44100) <= 1


def _write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("make", "error", "needle"),
    [
        (lambda d: d / "missing.wav", UsageError, "no such file"),
        (lambda d: d, UsageError, "is a directory"),
        (lambda d: _write_bytes(d / "noise.wav", bytes(range(256)) * 40), AudioDecodeError, "cannot decode"),
        (lambda d: _write_bytes(d / "empty.ogg", b""), AudioDecodeError, "cannot decode"),
    ],
)
def test_bad_files_raise_one_typed_error(tmp_path: Path, make, error: type[Exception], needle: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error, match=needle):
        load_audio(make(tmp_path), 22050)


def test_zero_sample_wav_is_reported_as_empty(tmp_path: Path) -> None:
    path = tmp_path / "zero.wav"
    sf.write(path, np.zeros(0, dtype=np.float32), 22050)
    with pytest.raises(AudioDecodeError, match="empty"):
        load_audio(path, 22050)


def test_nan_samples_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "nan.wav"
    x = _tone(440.0, 22050, 0.5)
    x[100] = np.nan
    sf.write(path, x, 22050, subtype="FLOAT")
    with pytest.raises(AudioDecodeError, match="NaN"):
        load_audio(path, 22050)
