"""The teacher's genre head and the distillation targets, on toy embeddings (no TensorFlow, no audio)."""

from __future__ import annotations

import numpy as np

from edge.scoring import mean_log_probs
from trainer.teacher.distill import head_scores
from trainer.teacher.embed import ClipEmbedding
from trainer.teacher.head import cross_fitted, fit_head
from trainer.teacher.targets import distill_targets, frame_table, overlap_weights, soften

K = 3


def _memorable_clips(n: int, rng: np.random.Generator) -> tuple[list[ClipEmbedding], np.ndarray]:
    """Clips whose label is written only in a dimension of their own: a head can know a clip's label only
    if that clip was in its fit. Two shared noise dimensions keep every standardisation well defined."""
    labels = np.arange(n) % K
    clips = []
    for i in range(n):
        emb = np.zeros((4, n + 2), dtype=np.float32)
        emb[:, i] = 1.0 + labels[i]
        emb[:, n:] = rng.normal(size=(4, 2))
        clips.append(ClipEmbedding(emb, np.zeros((4, 50), np.float32), np.arange(4, dtype=np.float32) * 3, 3.0))
    return clips, labels.astype(np.int64)


def test_a_head_knows_the_labels_of_clips_it_was_fitted_on() -> None:
    clips, labels = _memorable_clips(30, np.random.default_rng(0))
    head = fit_head(clips, labels, K)
    probs = np.stack([head.predict(c.embedding).mean(axis=0) for c in clips])
    assert np.mean(probs[np.arange(30), labels]) > 0.6  # the toy is fair: fitted clips are remembered


def test_cross_fitted_targets_never_come_from_a_head_that_saw_the_clip_or_its_artist() -> None:
    clips, labels = _memorable_clips(30, np.random.default_rng(1))
    groups = [f"artist{i // 2}" for i in range(30)]  # pairs of clips share an artist
    # A second clip of each artist carries the same marker dimension: a head fitted on the artist's other
    # clip would know the label too, so grouping by artist must keep both out of the head that labels them.
    for i in range(0, 30, 2):
        clips[i + 1].embedding[:, i] = clips[i].embedding[:, i]
        labels[i + 1] = labels[i]
    oof = cross_fitted(clips, labels, groups, K, folds=5, seed=0)
    p_true = np.array([p.mean(axis=0)[lab] for p, lab in zip(oof, labels, strict=True)])
    print(f"cross-fitted probability of the true label: mean {p_true.mean():.3f}")
    assert p_true.mean() < 0.5  # near chance (1/3): nothing about a clip leaked into the head labelling it


def test_the_teacher_row_scores_test_clips_its_head_never_fitted() -> None:
    rng = np.random.default_rng(2)
    train, y_train = _memorable_clips(30, rng)
    test, y_test = _memorable_clips(30, np.random.default_rng(9))
    for c in test:  # test clips carry labels in dimensions the training clips leave at zero
        c.embedding[:, :30] = np.roll(c.embedding[:, :30], 7, axis=1) * 5
    s = head_scores(train, y_train, test, y_test, K, seed=0)
    alone = fit_head(train, y_train, K, seed=0)
    expected = np.stack([mean_log_probs(alone.predict(c.embedding)) for c in test]).argmax(axis=1)
    # Had a test clip reached the fit, its marker would have been learnt and the verdicts would differ.
    np.testing.assert_array_equal(s.clip_pred, expected)


def test_window_targets_mix_the_patches_a_window_straddles_by_overlap() -> None:
    w = overlap_weights(np.array([0.0, 1.5, 3.0, 20.0], np.float32), 3.0, np.array([0.0, 3.0], np.float32), 3.0)
    np.testing.assert_allclose(w, [[1, 0], [0.5, 0.5], [0, 1], [0, 1]], atol=1e-6)
    table = frame_table(200, 126, 512 / 22050, 3.0, np.array([0.0, 3.0], np.float32), 3.0,
                        np.array([[1.0, 0.0], [0.0, 1.0]], np.float32))
    assert table.shape == (75, 2)
    np.testing.assert_allclose(table.sum(axis=1), 1.0, atol=1e-6)
    assert table[0, 0] == 1.0 and table[-1, 1] > table[0, 1]


def test_softening_spreads_belief_and_keeps_the_order() -> None:
    p = np.array([[0.8, 0.15, 0.05]], np.float32)
    s = soften(p, 2.0)
    np.testing.assert_allclose(s.sum(), 1.0, atol=1e-6)
    assert s[0, 0] < p[0, 0] and s[0, 2] > p[0, 2] and list(np.argsort(s[0])) == list(np.argsort(p[0]))


def test_distillation_loss_on_a_toy_batch_is_label_ce_plus_weighted_kl() -> None:
    """Cross-entropy against the mixed target = (1 - w) CE(label) + w KL(teacher || student) + w H(teacher)."""
    rng = np.random.default_rng(3)
    student = rng.dirichlet(np.ones(K), size=8).astype(np.float32)
    teacher = rng.dirichlet(np.ones(K), size=8).astype(np.float32)
    onehot = np.eye(K, dtype=np.float32)[rng.integers(0, K, size=8)]
    w = 0.7
    mixed = distill_targets(onehot, teacher, w)
    ce = -(mixed * np.log(student)).sum(axis=1)
    ce_label = -(onehot * np.log(student)).sum(axis=1)
    kl = (teacher * (np.log(teacher) - np.log(student))).sum(axis=1)
    entropy = -(teacher * np.log(teacher)).sum(axis=1)
    np.testing.assert_allclose(ce, (1 - w) * ce_label + w * kl + w * entropy, rtol=1e-5)
    np.testing.assert_allclose(mixed.sum(axis=1), 1.0, atol=1e-6)
