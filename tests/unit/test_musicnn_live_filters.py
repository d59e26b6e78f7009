"""The exported tagger computes only the front-end filters that hear their input (trainer.teacher.musicnn.live_filters);
a filter whose kernel is ~0 is a constant channel. Pure numpy: no TensorFlow, no checkpoint."""

from __future__ import annotations

import numpy as np
import pytest

from trainer.teacher.musicnn import BN_EPSILON, CONSTANT_REACH, LOG_MEL_MAX, live_filters


def _variables(kernel: np.ndarray, input_gain: float = 0.44, bn_gamma: float = 1.0) -> dict[str, np.ndarray]:
    filters = kernel.shape[-1]
    return {
        "batch_normalization/moving_mean": np.zeros(1, np.float32),
        "batch_normalization/moving_variance": np.full(1, 1.0 / input_gain**2 - BN_EPSILON, np.float32),
        "batch_normalization/beta": np.full(1, -1.1, np.float32),
        "batch_normalization/gamma": np.ones(1, np.float32),
        "conv2d/kernel": kernel.astype(np.float32),
        "conv2d/bias": np.zeros(filters, np.float32),
        "batch_normalization_1/moving_variance": np.full(filters, 1.0 - BN_EPSILON, np.float32),
        "batch_normalization_1/gamma": np.full(filters, bn_gamma, np.float32),
    }


def test_filters_no_input_can_move_are_left_out_and_the_rest_kept_in_order() -> None:
    rng = np.random.default_rng(0)
    kernel = rng.normal(0, 0.05, (7, 38, 1, 6))
    kernel[..., 1] = 0.0  # exactly zero
    kernel[..., 3] = 1e-12 * rng.normal(size=(7, 38, 1))  # ~0, as training leaves most of musicnn's
    kernel[..., 5] = 0.0
    kernel[0, 0, 0, 5] = 1e-3  # one small tap: the loudest input still moves it
    assert live_filters(_variables(kernel), 0).tolist() == [0, 2, 4, 5]


def test_the_reach_counts_the_loudest_input_and_the_batch_norm_gain() -> None:
    # A kernel summing to |w| = s reaches s * largest input * gain: just under the threshold is constant, over is not.
    largest = LOG_MEL_MAX * 0.44 - 1.1  # the loudest log-mel through the input batch-norm above
    kernel = np.zeros((1, 1, 1, 2))
    kernel[0, 0, 0, 0] = 0.9 * CONSTANT_REACH / largest
    kernel[0, 0, 0, 1] = 1.1 * CONSTANT_REACH / largest
    assert live_filters(_variables(kernel), 0).tolist() == [1]
    assert live_filters(_variables(kernel, bn_gamma=2.0), 0).tolist() == [0, 1]  # a larger gain reaches further


@pytest.mark.parametrize("filters", [1, 4])
def test_a_front_end_of_live_filters_keeps_them_all(filters: int) -> None:
    kernel = np.ones((3, 1, 1, filters))
    assert live_filters(_variables(kernel), 0).tolist() == list(range(filters))
