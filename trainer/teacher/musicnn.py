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
# forward_lite computes the temporal convolutions in blocks of this many frames (polyphase): PATCH_FRAMES = 4 * 47.
LITE_PHASES = 4
LOG_MEL_MAX = float(np.log10(10000.0 * float(np.finfo(np.float16).max) + 1.0))  # the loudest input value
CONSTANT_REACH = 1e-5  # a front-end filter whose output no input moves this far is a constant (live_filters)


def _layer(kind: str, i: int) -> str:
    """The checkpoint's name of the ``i``-th layer of a kind (Keras numbering: ``conv2d``, ``conv2d_1``, ...)."""
    return kind + (f"_{i}" if i else "")


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


def live_filters(variables: dict[str, FloatArray], i: int, reach: float = CONSTANT_REACH) -> npt.NDArray[np.intp]:
    """The filters of front-end conv ``i`` that hear their input, in order.

    MSD_musicnn's training left most front-end kernels at ~0 (497 of 561 filters, |w| <= 2e-7: 181 and 190 of the
    two timbral blocks' 204): such a filter outputs relu(bias) whatever it hears, so its channel of the front end's
    output is one constant at every frame, and computing it is ~85 % of the network's multiply-adds. A filter counts
    as constant when no input the edge can give moves its batch-normed output by ``reach``: its
    kernel's |w| summed, times the largest input magnitude (a float16 log-mel through the input batch-norm; the
    time padding adds zeros), times its batch-norm's gain. The live filters reach 4-6 orders of magnitude more."""
    mean, var, beta, gamma = (variables[f"batch_normalization/{k}"][0]
                              for k in ("moving_mean", "moving_variance", "beta", "gamma"))
    gain = gamma / np.sqrt(var + BN_EPSILON)
    largest = max(abs(beta - mean * gain), abs((LOG_MEL_MAX - mean) * gain + beta))  # >= 0, the padding
    kernel = variables[_layer("conv2d", i) + "/kernel"].astype(np.float64)
    bn = _layer("batch_normalization", i + 1)
    bn_gain = np.abs(variables[f"{bn}/gamma"]) / np.sqrt(variables[f"{bn}/moving_variance"] + BN_EPSILON)
    moves = np.abs(kernel.reshape(-1, kernel.shape[-1])).sum(axis=0) * float(largest) * bn_gain
    return np.flatnonzero(moves >= reach)


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
        self._np = variables
        self._v = {k: tf.constant(v) for k, v in variables.items()}
        self.n_params = int(sum(v.size for v in variables.values()))
        self._fn = tf.function(self.forward, input_signature=[tf.TensorSpec((None, None, N_MELS), tf.float32)],
                               reduce_retracing=True)

    def _bn(self, x: Any, i: int, channels: npt.NDArray[np.intp] | None = None) -> Any:
        """Batch-norm ``i``, over all its channels or only ``channels`` (the live filters of the conv before it)."""
        if channels is not None:
            return self._bn_tiled(x, i, 1, channels)
        name = _layer("batch_normalization", i)
        v = self._v
        return self._tf.nn.batch_normalization(x, v[f"{name}/moving_mean"], v[f"{name}/moving_variance"],
                                               v[f"{name}/beta"], v[f"{name}/gamma"], BN_EPSILON)

    def _conv(self, x: Any, i: int, padding: str) -> Any:
        name = _layer("conv2d", i)
        tf = self._tf
        y = tf.nn.conv2d(x, self._v[f"{name}/kernel"], strides=1, padding=padding)
        return tf.nn.relu(y + self._v[f"{name}/bias"])

    def _conv_as(self, x: Any, i: int, kernel: FloatArray, bias: FloatArray | None = None) -> Any:
        """``_conv`` (VALID) with conv ``i``'s kernel re-laid-out as ``kernel`` (and its bias as ``bias``)."""
        name = _layer("conv2d", i)
        tf = self._tf
        y = tf.nn.conv2d(x, tf.constant(kernel), strides=1, padding="VALID")
        return tf.nn.relu(y + tf.constant(self._np[f"{name}/bias"] if bias is None else bias))

    def _bn_tiled(self, x: Any, i: int, reps: int, channels: npt.NDArray[np.intp] | None = None) -> Any:
        """``_bn`` over channels that hold ``reps`` copies of batch-norm ``i``'s channels (or of ``channels`` of
        them) one after the other."""
        name = _layer("batch_normalization", i)
        pick = slice(None) if channels is None else channels
        p = {k: self._tf.constant(np.tile(self._np[f"{name}/{k}"][pick], reps))
             for k in ("moving_mean", "moving_variance", "beta", "gamma")}
        return self._tf.nn.batch_normalization(x, p["moving_mean"], p["moving_variance"], p["beta"], p["gamma"],
                                               BN_EPSILON)

    def _dense(self, x: Any, i: int) -> Any:
        name = _layer("dense", i)
        return self._tf.matmul(x, self._v[f"{name}/kernel"]) + self._v[f"{name}/bias"]

    def forward(self, x: Any) -> tuple[Any, Any, Any, Any]:
        return self._forward(x, lite=False)

    def forward_lite(self, x: Any) -> tuple[Any, Any, Any, Any]:
        """``forward`` for a fixed number of frames (a multiple of :data:`LITE_PHASES`), the same sums laid out for
        TFLite's XNNPACK. Every convolution in ``forward`` reads one input channel, so XNNPACK's indirection buffer
        holds a pointer per output pixel and kernel tap (the 7 x 38 kernel alone: 188 x 59 x 266 pointers, 24 MB;
        all eight ~85 MB, for the interpreter's life). Moving the taps into input channels cuts that to ~10 MB:
        the timbral kernels read a 7-frame shift stack, the temporal ones read 4-frame blocks (polyphase, 4 output
        frames per block), the mid-end convolutions read their 561/64 features as channels. And only the front-end
        filters with a non-zero kernel are computed (:func:`live_filters`): the others' channels are constants,
        written in place, so the model does about a seventh of the multiply-adds for the same outputs."""
        return self._forward(x, lite=True)

    def _timbral_lite(self, stacked: Any, i: int, live: npt.NDArray[np.intp]) -> Any:
        """conv ``i`` (kh, kw) over the padded input == (1, kw) over its kh-frame shift stack (taps -> channels),
        ``live`` filters only."""
        name = _layer("conv2d", i)
        kernel = self._np[f"{name}/kernel"][..., live]
        return self._conv_as(stacked, i, np.ascontiguousarray(np.transpose(kernel, (2, 1, 0, 3))),
                             self._np[f"{name}/bias"][live])

    def _temporal_lite(self, inp: Any, i: int, bn: int, live: npt.NDArray[np.intp]) -> Any:
        """conv ``i`` (k x 1, 'same') -> relu -> batch-norm ``bn`` -> max over frequency, ``live`` filters only, on
        4-frame blocks: block q's channel r * filters + c is output frame 4 q + r of filter c."""
        tf, s = self._tf, LITE_PHASES
        name = _layer("conv2d", i)
        kernel = self._np[f"{name}/kernel"][..., live]  # (k, 1, 1, filters)
        k, filters = kernel.shape[0], kernel.shape[3]
        taps = -(-(s - 1 + k) // s)
        w = np.zeros((taps, 1, s, s, filters), np.float32)  # (block tap, 1, input phase, output phase, filter)
        for a in range(taps):
            for rp in range(s):
                for r in range(s):
                    if 0 <= s * a + rp - r < k:
                        w[a, 0, rp, r] = kernel[s * a + rp - r, 0, 0]
        frames, bins = int(inp.shape[1]), int(inp.shape[2])
        blocks = frames // s
        length = s * (blocks - 1 + taps)
        top = (k - 1) // 2  # 'same' padding
        xp = tf.pad(tf.reshape(inp, (-1, frames, bins)), [[0, 0], [top, length - frames - top], [0, 0]])
        xs = tf.transpose(tf.reshape(xp, (-1, length // s, s, bins)), (0, 1, 3, 2))  # (n, blocks, bins, s)
        y = self._conv_as(xs, i, w.reshape(taps, 1, s, s * filters), np.tile(self._np[f"{name}/bias"][live], s))
        pooled = self._max_over_frequency(self._bn_tiled(y, bn, s, live))  # (n, blocks, s * filters)
        return tf.reshape(pooled, (-1, frames, filters))

    def _with_constant_channels(self, y: Any, i: int, live: npt.NDArray[np.intp]) -> Any:
        """The front-end block of conv ``i`` with all its channels, from ``y`` (n, T, len(live)): a constant filter's
        channel is batch-norm ``i + 1`` of relu(bias), the same at every frame of every input. Laid out by one
        matmul with a 0/1 matrix plus a constant row, so the live channels keep their exact values."""
        tf = self._tf
        name = _layer("conv2d", i)
        filters = self._np[f"{name}/bias"].size
        if live.size == filters:
            return y
        place = np.zeros((live.size, filters), np.float32)
        place[np.arange(live.size), live] = 1.0
        dead = np.setdiff1d(np.arange(filters), live)
        level = self._bn(tf.nn.relu(tf.constant(self._np[f"{name}/bias"][dead])), i + 1, dead)
        constant = tf.scatter_nd(dead.reshape(-1, 1), level, (filters,))
        frames = int(y.shape[1])
        return tf.reshape(tf.matmul(tf.reshape(y, (-1, live.size)), tf.constant(place)) + constant,
                          (-1, frames, filters))

    def _max_over_frequency(self, y: Any) -> Any:
        """``reduce_max(y, axis=2)`` as a max pool: tflite_runtime 2.14's XNNPACK has no REDUCE_MAX, and each op
        it leaves out makes its (up to 9 MB) input a tensor of TFLite's own arena too."""
        tf, width = self._tf, int(y.shape[2])
        return tf.reshape(tf.nn.max_pool2d(y, (1, width), (1, width), "VALID"), (-1, y.shape[1], y.shape[3]))

    def _forward(self, x: Any, lite: bool) -> tuple[Any, Any, Any, Any]:
        tf = self._tf
        pad_t = [[0, 0], [3, 3], [0, 0], [0, 0]]  # 'same' in time only: frequency is pooled away after
        inp = self._bn(tf.expand_dims(x, 3), 0)
        # Front end: two timbral blocks (7 x 38, 7 x 67 mel bands), three temporal ones (128, 64, 32 frames);
        # conv -> relu -> batch-norm -> max over frequency. Order = the checkpoint's numbering.
        front = []
        padded = tf.pad(inp, pad_t)
        if lite:
            if inp.shape[1] is None or inp.shape[1] % LITE_PHASES:
                raise ValueError(f"forward_lite needs a fixed multiple of {LITE_PHASES} frames, not {inp.shape[1]}")
            # Channel j = the input j frames on: a one-hot 7 x 1 convolution (exact).
            stacked = tf.nn.conv2d(padded, tf.constant(np.eye(7, dtype=np.float32).reshape(7, 1, 1, 7)), 1, "VALID")
        for i in (1, 2):
            if lite:
                live = live_filters(self._np, i - 1)
                y = self._max_over_frequency(self._bn(self._timbral_lite(stacked, i - 1, live), i, live))
                front.append(self._with_constant_channels(y, i - 1, live))
            else:
                front.append(tf.reduce_max(self._bn(self._conv(padded, i - 1, "VALID"), i), axis=2))
        for i in (3, 4, 5):
            if lite:
                live = live_filters(self._np, i - 1)
                front.append(self._with_constant_channels(self._temporal_lite(inp, i - 1, i, live), i - 1, live))
            else:
                front.append(tf.reduce_max(self._bn(self._conv(inp, i - 1, "SAME"), i), axis=2))
        front_out = tf.concat(front, 2)  # (n, T, 561)
        # Mid end: three 7-frame convolutions over all channels, the last two residual (dense connections).
        mids = [front_out]
        h = front_out
        for j, bn in zip((5, 6, 7), (6, 7, 8), strict=True):
            if lite:  # the features as input channels of a 7 x 1 convolution
                frames, width = int(h.shape[1]), int(h.shape[2])
                c = tf.reshape(tf.pad(h, pad_t[:3]), (-1, frames + 6, 1, width))
                kernel = self._np[_layer("conv2d", j) + "/kernel"]  # (7, width, 1, 64)
                y = self._conv_as(c, j, np.ascontiguousarray(np.transpose(kernel, (0, 2, 1, 3))))
                y = tf.reshape(self._bn(y, bn), (-1, frames, MID_FILTERS))
            else:
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
