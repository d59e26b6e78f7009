"""The tagger family's head: fitted on the run's training clips and copies only, exported as one affine map."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.spec import musicnn_spec
from trainer.model.recipes import get_recipe
from trainer.tagger.embed import WindowEmbeddings
from trainer.tagger.export import N_TAGS, inverse_dct_matrix
from trainer.tagger.fit import TaggerData, evaluate, fit
from trainer.teacher.head import fit_arrays

LABELS = ("blues", "jazz", "not_music")
DIM = 12


@dataclass(frozen=True)
class _Clip:
    clip_id: str


def _data(rng: np.random.Generator, n: int = 18) -> TaggerData:
    """Clips whose class shows in the embedding's first dimensions; every clip has clean and two copies."""
    y = np.arange(n) % len(LABELS)
    rows = {}
    for i in range(n):
        for variant in ("clean", "aug/0", "noise/0", "eval/typical"):
            emb = rng.normal(size=(5, DIM)).astype(np.float32)
            emb[:, y[i]] += 3.0
            rows[(f"c{i}", variant)] = np.hstack([np.zeros((5, N_TAGS), np.float32), emb])
    return TaggerData([_Clip(f"c{i}") for i in range(n)], LABELS, y.astype(np.int64),
                      WindowEmbeddings(rows, 0, len(rows), {}), musicnn_spec(LABELS))


def test_the_folded_linear_head_is_the_fitted_head() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, DIM)).astype(np.float32) * rng.uniform(0.1, 10, DIM).astype(np.float32) + 4
    y = rng.integers(0, 3, 300)
    head = fit_arrays(x, y, n_classes=4, seed=0)  # class 3 never seen: probability ~0 in both forms
    probe = rng.normal(size=(50, DIM)).astype(np.float32) * 3
    assert np.abs(head.linear().predict(probe) - head.predict(probe)).max() < 1e-5


def test_the_head_never_reads_a_test_clip() -> None:
    rng = np.random.default_rng(1)
    data = _data(rng)
    train_idx, test_idx = np.arange(0, 12), np.arange(12, 18)
    for i in test_idx:  # anything read from a test clip would poison the fit
        for variant in ("clean", "aug/0", "noise/0"):
            data.emb.rows[(f"c{i}", variant)][:] = np.nan
    data_ok = _data(np.random.default_rng(1))
    for i in test_idx:  # the test clips' evaluation copies stay readable: they are scored
        for variant in ("clean", "eval/typical"):
            data.emb.rows[(f"c{i}", variant)] = data_ok.emb.rows[(f"c{i}", variant)]
    head = fit(get_recipe("tagger"), data, train_idx, ("aug/0", "noise/0"), seed=0).linear()
    assert np.isfinite(head.weight).all() and np.isfinite(head.bias).all()
    scores = evaluate(head, data, test_idx, ("clean", "typical"))
    assert scores["clean"].clip_accuracy == 1.0 and scores["typical"].clip_accuracy == 1.0


def test_the_inverse_dct_undoes_the_edge_dct() -> None:
    import scipy.fft

    x = np.random.default_rng(2).normal(size=(7, 96))
    ceps = scipy.fft.dct(x, type=2, norm="ortho", axis=1)
    assert np.abs(ceps @ inverse_dct_matrix().astype(np.float64) - x).max() < 1e-5
