"""The edge computes the tagger's input itself (FeatureSpec front_end "musicnn"): Slaney mel in numpy, streaming
equal to batch, and the shared reference's musicnn input reproduced from the clips' audio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.fft

from edge.audio import load_audio
from edge.errors import SpecError
from edge.features import StreamingMfcc, mfcc
from edge.melbank import slaney_filterbank
from edge.spec import FeatureSpec, musicnn_spec

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "teacher" / "musicnn_msd_reference.npz"
GTZAN = REFERENCE.parents[1] / "gtzan"
LABELS = ("blues", "jazz", "not_music")


def test_the_slaney_filterbank_is_librosas() -> None:
    librosa = pytest.importorskip("librosa")
    ours = slaney_filterbank(16000, 512, 96)
    theirs = librosa.filters.mel(sr=16000, n_fft=512, n_mels=96)
    assert ours.shape == theirs.shape == (96, 257)
    assert np.abs(ours - theirs).max() < 1e-6 * theirs.max()


def test_the_tagger_spec_describes_musicnn_patches() -> None:
    spec = musicnn_spec(LABELS, hop_s=1.5)
    assert spec.input_shape == (188, 96)  # musicnn's 3 s patch
    assert spec.sample_rate == 16000 and spec.hop_frames == 94
    again = FeatureSpec.from_dict(spec.to_dict())
    assert again == spec


def test_a_version_1_spec_is_an_mfcc_spec() -> None:
    old = {"labels": list(LABELS), "spec_version": 1, "n_mfcc": 13}
    spec = FeatureSpec.from_dict(old)
    assert spec.front_end == "mfcc" and spec.n_mfcc == 13


@pytest.mark.parametrize("change", [{"n_mfcc": 40}, {"preemph": 0.97}, {"cmn": True}, {"front_end": "mel"}])
def test_the_tagger_front_end_refuses_mfcc_knobs(change: dict[str, object]) -> None:
    with pytest.raises(SpecError):
        musicnn_spec(LABELS).with_updates(**change)


def test_streaming_equals_batch_bit_for_bit() -> None:
    spec = musicnn_spec(LABELS)
    rng = np.random.default_rng(3)
    t = np.arange(7 * spec.sample_rate) / spec.sample_rate
    audio = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    batch = mfcc(audio, spec)
    stream = StreamingMfcc(spec, capacity=batch.shape[0])
    pos = 0
    for size in rng.integers(1, 5000, 200):
        stream.push(audio[pos : pos + size])
        pos += int(size)
    stream.push(audio[pos:])
    window = stream.latest_window()
    assert window is not None
    assert np.array_equal(window, batch[-spec.frames_per_window :])


def test_a_full_scale_square_wave_stays_finite() -> None:
    spec = musicnn_spec(LABELS)
    square = np.sign(np.sin(2 * np.pi * 1000 * np.arange(spec.sample_rate) / spec.sample_rate)).astype(np.float32)
    assert np.isfinite(mfcc(square, spec)).all()


@pytest.mark.skipif(not REFERENCE.is_file(), reason=f"teacher reference not found at {REFERENCE}")
def test_the_edge_front_end_reproduces_musicnns_input_from_the_audio() -> None:
    """musicnn centres its frames (frame i + 1 of a patch is our frame i), so patch p >= 1 starts at our frame
    188 p - 1; patch 0's first frame is musicnn's zero padding and is compared from its second frame on."""
    ref = np.load(REFERENCE)
    spec = musicnn_spec(LABELS)
    worst = 0.0
    for k, clip in enumerate(ref["clips"]):
        path = GTZAN / str(clip)
        if not path.is_file():
            pytest.skip(f"{path} not found")
        log_mel = scipy.fft.idct(mfcc(load_audio(path, spec.sample_rate), spec).astype(np.float64), type=2,
                                 norm="ortho", axis=1)
        for p in range(ref[f"input_{k}"].shape[0]):
            want = ref[f"input_{k}"][p]
            got = log_mel[188 * p - 1 : 188 * p + 187] if p else log_mel[:187]
            worst = max(worst, float(np.abs(got - (want if p else want[1:])).max()))
    print(f"max |edge - musicnn input| = {worst:.2e} (log10 units; values reach ~6)")
    assert worst < 1e-3
