"""The classification core on real audio with the real (tiny, int8) TFLite model: hops, gates, chunking."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.audio import load_audio
from edge.bundle import Bundle, load_bundle
from edge.decide.classifier import Classifier, WindowResult
from edge.decide.params import DecisionParams

GTZAN = Path(__file__).resolve().parents[3] / "shared" / "gtzan"


@pytest.fixture(scope="module")
def bundle(tiny_bundle: Path) -> Bundle:
    return load_bundle(tiny_bundle)


@pytest.fixture(scope="module")
def music(bundle: Bundle) -> np.ndarray:
    clip = GTZAN / "rock" / "rock.00000.ogg"
    if not clip.is_file():
        pytest.skip(f"GTZAN clip missing: {clip}")
    return load_audio(clip, bundle.spec.sample_rate)[: 12 * bundle.spec.sample_rate]


def run(c: Classifier, audio: np.ndarray, chunk: int) -> list[WindowResult]:
    out = []
    for i in range(0, audio.size, chunk):
        r = c.push(audio[i : i + chunk])
        if r is not None:
            out.append(r)
    return out


def test_one_window_per_hop_after_the_first_full_window(bundle: Bundle, music: np.ndarray) -> None:
    c = Classifier(bundle.spec, bundle.model, DecisionParams(), 1.0)
    results = run(c, music, 2205)
    # 12 s of audio, first window at ~3 s, then one per second.
    assert len(results) == 10, [r.stream_s for r in results]
    assert results[0].stream_s == pytest.approx(3.0, abs=0.1)
    assert np.allclose(np.diff([r.stream_s for r in results]), 1.0, atol=0.05)
    assert c.counters.inferences == 10 and c.counters.windows == 10
    assert all(r.inference_ms is not None and r.inference_ms < 100 for r in results)


def test_results_do_not_depend_on_chunk_size(bundle: Bundle, music: np.ndarray) -> None:
    runs = []
    for chunk in (441, 2205, 7000):
        c = Classifier(bundle.spec, bundle.model, DecisionParams(), 1.0)
        runs.append([(r.candidate, round(r.confidence, 4), round(r.rms_dbfs, 1)) for r in run(c, music, chunk)])
    # Chunks that divide the hop give identical windows; 7000-sample chunks end between hop
    # boundaries, so each window closes a few frames late, but the cadence stays one per hop.
    assert runs[0] == runs[1]
    assert len(runs[2]) == len(runs[0])


def test_silence_gate_skips_the_model(bundle: Bundle) -> None:
    sr = bundle.spec.sample_rate
    c = Classifier(bundle.spec, bundle.model, DecisionParams(silence_dbfs=-50.0), 1.0)
    rng = np.random.default_rng(0)
    hiss = (10 ** (-70 / 20) * rng.standard_normal(6 * sr)).astype(np.float32)  # -70 dBFS room hiss
    results = run(c, hiss, 2205)
    assert results and all(r.candidate == "silence" and r.published == "silence" for r in results)
    assert all(r.inference_ms is None for r in results)
    assert c.counters.inferences == 0 and c.counters.silent_windows == len(results)
    assert results[-1].rms_dbfs == pytest.approx(-70, abs=1.0)


def test_music_after_silence_is_classified_with_fresh_history(bundle: Bundle, music: np.ndarray) -> None:
    sr = bundle.spec.sample_rate
    c = Classifier(bundle.spec, bundle.model, DecisionParams(hysteresis_windows=2), 1.0)
    results = run(c, np.concatenate([np.zeros(4 * sr, dtype=np.float32), music[: 8 * sr]]), 2205)
    labels = [r.published for r in results]
    assert labels[0] == "silence"
    assert labels[-1] != "silence", labels
    assert c.counters.inferences > 0 and c.counters.silent_windows > 0


def test_confidence_gate_gives_uncertain(bundle: Bundle, music: np.ndarray) -> None:
    c = Classifier(bundle.spec, bundle.model, DecisionParams(min_confidence=1.0), 1.0)
    results = run(c, music, 2205)
    assert {r.candidate for r in results} == {"uncertain"}
    # "uncertain" means music of no clear genre: its confidence is the probability of "some genre",
    # all of it for a model without a reject class, while no single genre reaches the gate.
    assert all(r.confidence == pytest.approx(1.0) and 0 < r.top3[0][1] < 1 for r in results)
    assert results[-1].top3[0][0] in bundle.spec.labels


def test_reset_forgets_buffered_audio(bundle: Bundle, music: np.ndarray) -> None:
    c = Classifier(bundle.spec, bundle.model, DecisionParams(), 1.0)
    run(c, music[: 5 * bundle.spec.sample_rate], 2205)
    c.reset()
    assert c.push(music[:2205]) is None  # needs a full window again
    assert c.mfcc.latest_window() is None
