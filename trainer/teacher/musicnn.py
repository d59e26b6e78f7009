"""The MSD_musicnn tagger (Pons & Serra 2019) rebuilt from its TensorFlow 1 checkpoint as plain TF ops.

musicnn's own code builds the graph with ``tf.compat.v1.layers``, which needs legacy Keras for the whole
process; the trainer's own models are Keras 3. The network is small and fixed (inference only), so it is
written here as ``tf.nn`` calls over the checkpoint's variables: no Keras at all, nothing switched globally.
Variable names follow the order the original graph creates them (``conv2d``, ``conv2d_1``, ...).

Input: log-mel patches (batch, 188, 96) from ``trainer.teacher.mel``. Output per patch: the 50 tag
probabilities and the embedding the genre head reads (mean pool 753 + max pool 753 + penultimate 200).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
BN_EPSILON = 1e-3  # tf.compat.v1.layers.batch_normalization's default
N_MELS = 96
PATCH_FRAMES = 188  # 3 s at 16 kHz, hop 256
MID_FILTERS = 64
EMBEDDING_PARTS = {"mean_pool": 753, "max_pool": 753, "penultimate": 200}
EMBEDDING_DIM = sum(EMBEDDING_PARTS.values())


@dataclass(frozen=True)
class TeacherOutputs:
    tags: FloatArray  # (n, 50) sigmoid tag scores
    mean_pool: FloatArray  # (n, 753)
    max_pool: FloatArray  # (n, 753)
    penultimate: FloatArray  # (n, 200)

    def embedding(self) -> FloatArray:
        """(n, 1706): what the genre head and the embedding-regression student read."""
        out: FloatArray = np.concatenate([self.mean_pool, self.max_pool, self.penultimate], axis=1)
        return out.astype(np.float32, copy=False)


def read_checkpoint(folder: Path) -> dict[str, FloatArray]:
    """The model's own variables (not Adam's slots) from the TF1 checkpoint whose prefix is ``folder`` itself
    (files ``folder/.index``, ``folder/.data-00000-of-00001``, as the wheel ships them)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf  # lazy: feature workers and `genre-train --help` never load TF

    # The wheel's `checkpoint` file names the author's machine, so the prefix is given to the reader directly.
    reader = tf.compat.v1.train.NewCheckpointReader(f"{folder}{os.sep}")
    names = [n for n in reader.get_variable_to_shape_map() if "Adam" not in n and not n.endswith("_power")]
    return {n: np.asarray(reader.get_tensor(n), dtype=np.float32) for n in names}


class Musicnn:
    """MSD_musicnn's forward pass (batch-norm in inference mode) over checkpoint variables."""

    def __init__(self, variables: dict[str, FloatArray]) -> None:
        import tensorflow as tf  # lazy: see read_checkpoint

        self._tf = tf
        self._v = {k: tf.constant(v) for k, v in variables.items()}
        self.n_params = int(sum(v.size for v in variables.values()))
        self._fn = tf.function(self.forward, input_signature=[tf.TensorSpec((None, None, N_MELS), tf.float32)],
                               reduce_retracing=True)

    def _bn(self, x: Any, i: int) -> Any:
        name = "batch_normalization" + (f"_{i}" if i else "")
        v = self._v
        return self._tf.nn.batch_normalization(x, v[f"{name}/moving_mean"], v[f"{name}/moving_variance"],
                                               v[f"{name}/beta"], v[f"{name}/gamma"], BN_EPSILON)

    def _conv(self, x: Any, i: int, padding: str) -> Any:
        name = "conv2d" + (f"_{i}" if i else "")
        tf = self._tf
        y = tf.nn.conv2d(x, self._v[f"{name}/kernel"], strides=1, padding=padding)
        return tf.nn.relu(y + self._v[f"{name}/bias"])

    def _dense(self, x: Any, i: int) -> Any:
        name = "dense" + (f"_{i}" if i else "")
        return self._tf.matmul(x, self._v[f"{name}/kernel"]) + self._v[f"{name}/bias"]

    def forward(self, x: Any) -> tuple[Any, Any, Any, Any]:
        tf = self._tf
        pad_t = [[0, 0], [3, 3], [0, 0], [0, 0]]  # 'same' in time only: frequency is pooled away after
        inp = self._bn(tf.expand_dims(x, 3), 0)
        # Front end: two timbral blocks (7 x 38, 7 x 67 mel bands), three temporal ones (128, 64, 32 frames);
        # conv -> relu -> batch-norm -> max over frequency. Order = the checkpoint's numbering.
        front = []
        padded = tf.pad(inp, pad_t)
        for i in (1, 2):
            front.append(tf.reduce_max(self._bn(self._conv(padded, i - 1, "VALID"), i), axis=2))
        for i in (3, 4, 5):
            front.append(tf.reduce_max(self._bn(self._conv(inp, i - 1, "SAME"), i), axis=2))
        front_out = tf.concat(front, 2)  # (n, T, 561)
        # Mid end: three 7-frame convolutions over all channels, the last two residual (dense connections).
        mids = [front_out]
        h = front_out
        for j, bn in zip((5, 6, 7), (6, 7, 8), strict=True):
            c = tf.expand_dims(tf.pad(tf.expand_dims(h, 3), pad_t)[..., 0], 3)
            y = self._bn(self._conv(c, j, "VALID"), bn)[:, :, 0, :]  # (n, T, 64)
            h = y if j == 5 else y + h
            mids.append(h)
        feats = tf.concat(mids, 2)  # (n, T, 753)
        max_pool = tf.reduce_max(feats, axis=1)
        mean_pool = tf.reduce_mean(feats, axis=1)
        # The original flattens concat([max, mean], axis=2) of (n, 753, 1) tensors: max and mean interleave.
        flat = tf.reshape(tf.stack([max_pool, mean_pool], axis=2), (-1, 2 * feats.shape[2]))
        penultimate = self._bn(tf.nn.relu(self._dense(self._bn(flat, 9), 0)), 10)
        tags = tf.sigmoid(self._dense(penultimate, 1))
        return tags, mean_pool, max_pool, penultimate

    def __call__(self, patches: FloatArray, batch: int = 64) -> TeacherOutputs:
        parts: list[list[FloatArray]] = [[], [], [], []]
        for i in range(0, patches.shape[0], batch):
            outs = self._fn(self._tf.constant(patches[i : i + batch], dtype=self._tf.float32))
            for acc, o in zip(parts, outs, strict=True):
                acc.append(np.asarray(o, dtype=np.float32))
        if not patches.shape[0]:
            dims = (50, *EMBEDDING_PARTS.values())
            return TeacherOutputs(*(np.zeros((0, d), dtype=np.float32) for d in dims))
        return TeacherOutputs(*(np.concatenate(p) for p in parts))
