"""The edge's front ends in numpy alone: the DCT and python_speech_features' filterbank equal the libraries'
(kept here as references), and the daemon's import set holds neither scipy nor python_speech_features."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import scipy.fft
from python_speech_features import base as psf_base

from edge.features import dct_ortho
from edge.melbank import psf_filterbank


@pytest.mark.parametrize("n", [13, 26, 27, 40, 96])
def test_dct_ortho_is_scipys(n: int) -> None:
    x = np.random.default_rng(n).standard_normal((64, n)) * 10
    assert np.abs(dct_ortho(x) - scipy.fft.dct(x, type=2, norm="ortho", axis=1)).max() < 1e-12


@pytest.mark.parametrize(("filters", "n_fft", "rate", "low", "high"),
                         [(26, 512, 16000, 0.0, None), (40, 2048, 22050, 0.0, 11025.0), (40, 2048, 22050, 60.0, 8000.0),
                          (20, 1024, 44100, 300.0, None)])
def test_psf_filterbank_is_python_speech_features(filters: int, n_fft: int, rate: int, low: float,
                                                   high: float | None) -> None:
    ours = psf_filterbank(filters, n_fft, rate, low, high)
    theirs = psf_base.get_filterbanks(filters, n_fft, rate, low, high)
    assert ours.shape == theirs.shape
    assert np.array_equal(ours, theirs)


def test_the_daemon_imports_neither_scipy_nor_python_speech_features() -> None:
    # The daemon's run-time modules, as `genre-daemon` imports them, in a fresh interpreter.
    code = ("import sys, daemon.cli, daemon.pipeline, edge.bundle, edge.classify\n"
            "bad = sorted({m.split('.')[0] for m in sys.modules} & {'scipy', 'python_speech_features', 'librosa', "
            "'tensorflow'})\n"
            "print(' '.join(bad) or 'clean')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "clean"
