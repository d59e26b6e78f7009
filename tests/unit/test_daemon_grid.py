"""WindowGrid: sources hand out audio up to the classifier's next window end, so the loop runs once
per hop. Checked against the real Classifier (tiny int8 model) and the real file source on real audio:
the grid is where windows complete, a file read through the grid gives the same windows as
block-by-block reads, and paced audio completing a window is not released later than its block.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from daemon.settings import SourceSettings
from daemon.sources import FileSource
from daemon.window_grid import WindowGrid
from edge.audio import load_audio
from edge.bundle import Bundle, load_bundle
from edge.decide.classifier import Classifier
from edge.decide.params import DecisionParams

GTZAN = Path(__file__).resolve().parents[3] / "shared" / "gtzan"


@pytest.fixture(scope="module")
def bundle(tiny_bundle: Path) -> Bundle:
    return load_bundle(tiny_bundle)


@pytest.fixture(scope="module")
def music_wav(bundle: Bundle, tmp_path_factory: pytest.TempPathFactory) -> Path:
    clip = GTZAN / "jazz" / "jazz.00001.ogg"
    if not clip.is_file():
        pytest.skip(f"GTZAN clip missing: {clip}")
    path = tmp_path_factory.mktemp("grid") / "jazz.wav"
    sf.write(path, load_audio(clip, 44100)[: 9 * 44100], 44100, subtype="PCM_16")
    return path


def _grid(bundle: Bundle, hop_s: float) -> WindowGrid:
    return WindowGrid.for_spec(bundle.spec, bundle.spec.frames_for(hop_s))


@pytest.mark.parametrize("hop_s", [1.0, 0.5])
def test_grid_is_where_the_classifier_completes_windows(bundle: Bundle, hop_s: float) -> None:
    rng = np.random.default_rng(5)
    audio = (0.3 * rng.standard_normal(8 * bundle.spec.sample_rate)).astype(np.float32)
    classifier = Classifier(bundle.spec, bundle.model, DecisionParams(), hop_s)
    ends, pushed, i = [], 0, 0
    while pushed < audio.size:  # odd chunk sizes, so no end falls on a chunk edge by luck
        n = int(rng.integers(1, 900))
        if classifier.push(audio[pushed : pushed + n]) is not None:
            ends.append(pushed + n)
        pushed += n
        i += 1
    grid = _grid(bundle, hop_s)
    expected, end = [], grid.next_end(0)
    while end <= audio.size:
        expected.append(end)
        end = grid.next_end(end)
    # Each result comes with the chunk holding the window's last sample: within one chunk after the end.
    assert len(ends) == len(expected) >= 4
    for got, want in zip(ends, expected, strict=True):
        assert want <= got < want + 900, (got, want)


def test_file_source_through_the_grid_gives_the_windows_of_block_reads(bundle: Bundle, music_wav: Path) -> None:
    def windows(grid: WindowGrid | None) -> tuple[list[float], list[object], int]:
        settings = SourceSettings(kind="file", path=str(music_wav), speed=0.0)
        src = FileSource(settings, bundle.spec.sample_rate, threading.Event(), grid)
        src.open()
        classifier = Classifier(bundle.spec, bundle.model, DecisionParams(), 1.0)
        stream_s: list[float] = []
        decisions: list[object] = []
        reads = 0
        while not src.finished:
            chunk = src.read(0.25)
            if chunk is None:
                continue
            reads += 1
            r = classifier.push(chunk)
            if r is not None:
                stream_s.append(r.stream_s)
                decisions.append((r.candidate, r.published, [(g, round(p, 5)) for g, p in r.top3]))
        src.close()
        return stream_s, decisions, reads

    by_block, dec_block, block_reads = windows(None)
    by_grid, dec_grid, grid_reads = windows(_grid(bundle, 1.0))
    # The same windows (same MFCC frames, so the same probabilities), each decided up to one block
    # sooner in the stream: block reads overshoot the window end by the rest of their block.
    assert dec_grid == dec_block and len(dec_grid) >= 6
    for g, b in zip(by_grid, by_block, strict=True):
        assert 0 <= b - g < 0.1 + 1e-6, (g, b)
    # One read per window, plus the resampler's tail at the end of the file.
    assert grid_reads <= len(by_grid) + 2 < block_reads / 5, (grid_reads, block_reads)


def test_paced_window_audio_is_released_when_its_block_is_due(bundle: Bundle, music_wav: Path) -> None:
    speed, chunk_s = 4.0, 0.1
    settings = SourceSettings(kind="file", path=str(music_wav), speed=speed, chunk_s=chunk_s)
    grid = _grid(bundle, 1.0)
    src = FileSource(settings, bundle.spec.sample_rate, threading.Event(), grid)
    src.open()
    t0 = time.monotonic()  # just after open, where the source's clock starts
    got, late, early = 0, [], []
    while not src.finished and got < 7 * bundle.spec.sample_rate:
        chunk = src.read(0.25)
        if chunk is None:
            continue
        released = time.monotonic() - t0
        got += chunk.size
        # Block by block, the block holding this read's last sample was due at its start.
        last_input_s = (got - 1) / bundle.spec.sample_rate
        due = int(last_input_s / chunk_s) * chunk_s / speed
        late.append(released - due)
        early.append(due - released)
    src.close()
    assert len(late) >= 4
    # Never before its time (the source's clock started a moment before t0), and late only by the
    # scheduler: a loaded 2-core box wakes a sleeper within tens of ms.
    assert max(early) < 0.01, early
    assert max(late) < 0.15, late
