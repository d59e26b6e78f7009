"""SampleRing: wrap-around, partial and oversized chunks, level over exactly the held samples."""

from __future__ import annotations

import numpy as np
import pytest

from edge.decide.ringbuffer import SampleRing


def test_partial_chunks_keep_order_until_full() -> None:
    ring = SampleRing(10)
    ring.push(np.arange(3, dtype=np.float32))
    ring.push(np.arange(3, 7, dtype=np.float32))
    assert ring.filled == 7
    np.testing.assert_array_equal(ring.latest(), np.arange(7, dtype=np.float32))


def test_wrap_around_returns_newest_samples_oldest_first() -> None:
    ring = SampleRing(10)
    stream = np.arange(37, dtype=np.float32)
    for start in range(0, 37, 4):  # 4 does not divide 10: every push position is exercised
        ring.push(stream[start : start + 4])
    assert ring.filled == 10 and ring.total == 37
    np.testing.assert_array_equal(ring.latest(), stream[-10:])
    np.testing.assert_array_equal(ring.latest(3), stream[-3:])


def test_chunk_longer_than_capacity_keeps_its_tail() -> None:
    ring = SampleRing(8)
    ring.push(np.ones(5, dtype=np.float32))
    ring.push(np.arange(20, dtype=np.float32))
    np.testing.assert_array_equal(ring.latest(), np.arange(12, 20, dtype=np.float32))


def test_any_chunking_gives_the_same_contents() -> None:
    rng = np.random.default_rng(1)
    stream = rng.standard_normal(5000).astype(np.float32)
    a, b = SampleRing(1234), SampleRing(1234)
    a.push(stream)
    pos = 0
    while pos < stream.size:
        n = int(rng.integers(1, 700))
        b.push(stream[pos : pos + n])
        pos += n
    np.testing.assert_array_equal(a.latest(), b.latest())
    assert a.mean_square() == pytest.approx(b.mean_square(), rel=1e-6)


def test_mean_square_covers_only_held_samples() -> None:
    ring = SampleRing(100)
    assert ring.mean_square() == 0.0
    ring.push(np.full(10, 0.5, dtype=np.float32))
    assert ring.mean_square() == pytest.approx(0.25)
    ring.push(np.zeros(100, dtype=np.float32))
    assert ring.mean_square() == 0.0


def test_push_does_not_reallocate_the_buffer() -> None:
    ring = SampleRing(64)
    buf = ring._buf
    for _ in range(50):
        ring.push(np.ones(7, dtype=np.float32))
    assert ring._buf is buf and ring._buf.dtype == np.float32


def test_reset_forgets_everything() -> None:
    ring = SampleRing(4)
    ring.push(np.ones(6, dtype=np.float32))
    ring.reset()
    assert ring.filled == 0 and ring.total == 0 and ring.latest().size == 0
