"""Source conversion on recorded buffers (sox-made PCM as PyAudio delivers it), device/rate choice,
and the file source's pacing, looping and resampling on real audio files."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from daemon.errors import SourceUnavailable
from daemon.mic import interleaved_to_mono, pick_device, pick_rate
from daemon.settings import SourceSettings
from daemon.sources import FileSource
from edge.audio import StreamResampler, resample
from tests.support.audio import dominant_frequency, rms_dbfs

needs_sox = pytest.mark.skipif(shutil.which("sox") is None, reason="sox not installed: apt-get install sox")


def sox_raw(tmp_path: Path, rate: int, channels: int, encoding: str, synth: list[str]) -> bytes:
    """Interleaved raw PCM exactly as a PyAudio blocking read returns it (native little endian)."""
    bits = "16" if encoding == "signed-integer" else "32"
    out = tmp_path / f"rec-{rate}-{channels}-{bits}.raw"
    cmd = ["sox", "-n", "-r", str(rate), "-c", str(channels), "-b", bits, "-e", encoding, "-t", "raw", str(out)]
    subprocess.run([*cmd, "synth", *synth], check=True, capture_output=True, timeout=30)
    return out.read_bytes()


def chunked(raw: bytes, bytes_per_frame: int, frames: int) -> list[bytes]:
    step = bytes_per_frame * frames
    return [raw[i : i + step] for i in range(0, len(raw), step)]


@needs_sox
def test_int16_stereo_48k_chunks_to_mono_22050(tmp_path: Path) -> None:
    # A USB mic's usual format: 48 kHz stereo int16, read 4800 frames (0.1 s) at a time.
    raw = sox_raw(tmp_path, 48000, 2, "signed-integer", ["2", "sine", "440", "vol", "0.5"])
    resampler = StreamResampler(48000, 22050)
    out = np.concatenate([resampler.process(interleaved_to_mono(c, "int16", 2)) for c in chunked(raw, 4, 4800)])
    assert out.dtype == np.float32
    # A stream that is never flushed holds back the HQ filter delay (~630 samples, 29 ms).
    assert 0 <= 2 * 22050 - out.size <= 1024, out.size
    assert dominant_frequency(out, 22050) == pytest.approx(440, abs=3)
    assert rms_dbfs(out[2000:-2000]) == pytest.approx(20 * np.log10(0.5 / np.sqrt(2)), abs=0.2)


@needs_sox
def test_float32_stereo_44k_chunks_match_whole_signal_resampling(tmp_path: Path) -> None:
    raw = sox_raw(tmp_path, 44100, 2, "floating-point", ["1", "sine", "1000", "sine", "1000", "vol", "0.25"])
    whole = interleaved_to_mono(raw, "float32", 2)
    resampler = StreamResampler(44100, 22050)
    parts = [resampler.process(interleaved_to_mono(c, "float32", 2)) for c in chunked(raw, 8, 1024)]
    parts.append(resampler.process(np.zeros(0, dtype=np.float32), last=True))
    streamed = np.concatenate(parts)
    reference = resample(whole, 44100, 22050)
    n = min(streamed.size, reference.size)
    assert abs(streamed.size - reference.size) <= 2
    np.testing.assert_allclose(streamed[1000 : n - 1000], reference[1000 : n - 1000], atol=2e-3)


def test_channels_are_averaged_not_summed_or_dropped() -> None:
    left = np.array([16384, -16384, 8192], dtype=np.int16)
    right = np.array([0, 16384, 8192], dtype=np.int16)
    raw = np.stack([left, right], axis=1).tobytes()
    np.testing.assert_allclose(interleaved_to_mono(raw, "int16", 2), [0.25, 0.0, 0.25])


def test_int16_scaling_and_torn_last_frame() -> None:
    raw = np.array([-32768, 32767, 0, 100, 7], dtype=np.int16).tobytes()  # 2.5 stereo frames
    out = interleaved_to_mono(raw, "int16", 2)
    assert out.shape == (2,)
    assert out[0] == pytest.approx((-1.0 + 32767 / 32768) / 2)
    mono = interleaved_to_mono(np.array([-32768, 16384], dtype=np.int16).tobytes(), "int16", 1)
    np.testing.assert_array_equal(mono, np.array([-1.0, 0.5], dtype=np.float32))


DEVICES = [  # the shape of PyAudio's get_device_info_by_index() on a Pi with a USB mic
    {"index": 0, "name": "bcm2835 Headphones: - (hw:0,0)", "maxInputChannels": 0, "defaultSampleRate": 44100.0},
    {"index": 1, "name": "USB PnP Sound Device: Audio (hw:1,0)", "maxInputChannels": 1, "defaultSampleRate": 48000.0},
    {"index": 2, "name": "pulse", "maxInputChannels": 32, "defaultSampleRate": 44100.0},
    {"index": 3, "name": "default", "maxInputChannels": 32, "defaultSampleRate": 44100.0},
]


def test_pick_device_by_substring_index_and_default() -> None:
    assert pick_device(DEVICES, "usb", None)["index"] == 1
    assert pick_device(DEVICES, 2, None)["name"] == "pulse"
    assert pick_device(DEVICES, "", 3)["name"] == "default"
    assert pick_device(DEVICES, "", None)["index"] == 1  # first input when there is no default


def test_pick_device_errors() -> None:
    with pytest.raises(SourceUnavailable, match="no input device matching 'Blue Yeti'"):
        pick_device(DEVICES, "Blue Yeti", None)
    with pytest.raises(SourceUnavailable, match="index 0"):
        pick_device(DEVICES, 0, None)  # an output-only device
    with pytest.raises(SourceUnavailable, match="no audio input device"):
        pick_device(DEVICES[:1], "", None)


def test_pick_rate_prefers_device_default_then_common_rates() -> None:
    usb = DEVICES[1]
    assert pick_rate(usb, 0, lambda r: True) == 48000
    assert pick_rate(usb, 0, lambda r: r == 44100) == 44100
    assert pick_rate(usb, 16000, lambda r: True) == 16000
    with pytest.raises(SourceUnavailable, match="does not support 96000 Hz"):
        pick_rate(usb, 96000, lambda r: r == 48000)
    with pytest.raises(SourceUnavailable, match="supports none"):
        pick_rate(usb, 0, lambda r: False)


def file_settings(path: Path, **kw: object) -> SourceSettings:
    return SourceSettings(kind="file", path=str(path), **kw)  # type: ignore[arg-type]


def write_tone(path: Path, seconds: float, rate: int, channels: int) -> Path:
    t = np.arange(round(seconds * rate)) / rate
    x = 0.3 * np.sin(2 * np.pi * 500 * t)
    sf.write(str(path), np.repeat(x[:, None], channels, axis=1), rate, subtype="PCM_16")
    return path


def drain(src: FileSource, limit_s: float = 10.0) -> np.ndarray:
    parts = []
    deadline = time.monotonic() + limit_s
    while not src.finished and time.monotonic() < deadline:
        chunk = src.read(0.25)
        if chunk is not None:
            parts.append(chunk)
    return np.concatenate(parts)


def test_file_source_resamples_stereo_44k_to_mono_model_rate(tmp_path: Path) -> None:
    wav = write_tone(tmp_path / "t.wav", 2.0, 44100, 2)
    src = FileSource(file_settings(wav, speed=0.0), 22050, threading.Event())
    src.open()
    out = drain(src)
    src.close()
    assert abs(out.size - 44100) <= 2, out.size
    assert dominant_frequency(out, 22050) == pytest.approx(500, abs=3)


def test_file_source_paced_at_speed(tmp_path: Path) -> None:
    wav = write_tone(tmp_path / "t.wav", 2.0, 22050, 1)
    src = FileSource(file_settings(wav, speed=8.0, chunk_s=0.05), 22050, threading.Event())
    src.open()
    t0 = time.monotonic()
    drain(src)
    took = time.monotonic() - t0
    assert 0.2 <= took <= 0.6, f"2 s at 8x took {took:.3f} s (want ~0.25 s)"


def test_file_source_loops(tmp_path: Path) -> None:
    wav = write_tone(tmp_path / "t.wav", 0.5, 22050, 1)
    src = FileSource(file_settings(wav, speed=0.0, loop=True), 22050, threading.Event())
    src.open()
    got = 0
    while got < 3 * 22050:
        chunk = src.read(0.25)
        assert chunk is not None
        got += chunk.size
    assert src.loops >= 5 and not src.finished


def test_file_source_read_returns_promptly_when_stopped(tmp_path: Path) -> None:
    wav = write_tone(tmp_path / "t.wav", 5.0, 22050, 1)
    stop = threading.Event()
    src = FileSource(file_settings(wav, speed=0.01), 22050, stop)
    src.open()
    src.read(0.25)
    stop.set()
    t0 = time.monotonic()
    assert src.read(5.0) is None
    assert time.monotonic() - t0 < 0.1


def test_undecodable_file_is_a_data_error(tmp_path: Path) -> None:
    from edge.errors import AudioDecodeError

    bad = tmp_path / "bad.ogg"
    bad.write_bytes(b"not audio at all" * 100)
    src = FileSource(file_settings(bad), 22050, threading.Event())
    with pytest.raises(AudioDecodeError, match=r"bad\.ogg: cannot decode"):
        src.open()
