"""The tagger as TFLite: cepstra in -> inverse DCT -> MSD_musicnn (frozen) -> embedding -> genre head.

Two graphs share everything up to the embedding: the **embedding model** (output: 50 tag scores, then the
1706-value embedding) that the trainer embeds every window with, and the **bundle model** that ships (output 0:
the genre head's probabilities; output 1: the 50 tag scores, :data:`TAGS`; output 2: the sensor heads'
probabilities, one per sensor, which the device's vocals and danceable sensors read at no extra cost). Both
store their weights as float16 (half the bytes of float32, embeddings within ~0.1 %, the same speed: measured in
../shared/teacher/README.md; int8 costs accuracy or time), and both take one window, as the edge runs them.
Training and serving read the same converter's arithmetic, so the heads are fitted on exactly the embeddings
the device computes.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.fft

from trainer.tagger.mixture import Head, linear_parts
from trainer.teacher.head import LinearHead
from trainer.teacher.musicnn import N_MELS, PATCH_FRAMES, Musicnn, read_checkpoint
from trainer.teacher.wheel import checkpoint_dir

log = logging.getLogger(__name__)
FloatArray = npt.NDArray[np.float32]
# MSD_musicnn's output order (musicnn.tagger's MSD labels): the bundle's second output, listed in model.json.
TAGS = ("rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s", "alternative rock",
        "jazz", "beautiful", "metal", "chillout", "male vocalists", "classic rock", "soul", "indie rock", "Mellow",
        "electronica", "80s", "folk", "90s", "chill", "instrumental", "punk", "oldies", "blues", "hard rock",
        "ambient", "acoustic", "experimental", "female vocalist", "guitar", "Hip-Hop", "70s", "party", "country",
        "easy listening", "sexy", "catchy", "funk", "electro", "heavy metal", "Progressive rock", "60s", "rnb",
        "indie pop", "sad", "House", "happy")
N_TAGS = len(TAGS)
EXPORT_VERSION = 4  # bump when the graph below changes: cached embeddings are keyed on the model's bytes anyway

# Every window is brought to one level before the tagger reads it. The tagger's input, log10(10000 x + 1) of the mel
# power, is a compressive curve whose working point moves with the playback level: measured on the held-out clips,
# the head kept its accuracy from -15 to -35 dBFS but fell to 57 % of clips at -45 dBFS and 24 % at -55 (a quiet
# evening, a MEMS microphone's low gain), while each window gained to -20 dBFS first kept 93 % at every level. The
# level is read from the window's own mel power, inside the graph, so the trainer's embeddings, genre-predict and the
# daemon all get it from the one model file, with no second copy in the edge's front end.
LEVEL_DBFS = -20.0
# The Slaney mel bank's mean output over a window of music is this many times the samples' mean square: 15.3 within
# -0.6 / +0.2 dB (10th / 90th percentile) over 451 windows of the shared clips, so the mean mel power reads the
# window's RMS level to better than a decibel without the samples.
MEL_PER_MEAN_SQUARE = 15.3
# Windows quieter than the daemon's -50 dBFS silence gate never reach the model; 30 dB lifts that floor to the level.
MAX_BOOST_DB = 30.0
_TARGET_MEAN_MEL = MEL_PER_MEAN_SQUARE * 10.0 ** (LEVEL_DBFS / 10.0)
_LN10 = float(np.log(10.0))


def inverse_dct_matrix(n: int = N_MELS) -> FloatArray:
    """M with ``log_mel = cepstra @ M`` for the orthonormal DCT-II the edge front end applies."""
    out: FloatArray = scipy.fft.idct(np.eye(n), type=2, norm="ortho", axis=1).astype(np.float32)
    return out


def convert(variables: dict[str, FloatArray], head: Head | None, *, float16: bool = True,
            tags: bool = True, sensor_heads: Sequence[LinearHead] = (), level: bool = True) -> bytes:
    """The embedding model (``head`` None) or the bundle model, input (1, 188, 96); float16-stored weights unless
    ``float16`` is False (float32: what a test holds the edge front end to, free of the weights' rounding). The
    bundle model's outputs are the genre probabilities, then (``tags``) the tag scores, then (``sensor_heads``,
    two-class heads on the same embedding) each sensor head's probability of its second class. ``level`` False
    leaves out the level step (:data:`LEVEL_DBFS`): musicnn exactly as published, what the reference test checks."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf  # lazy: feature workers and `genre-train --help` never load TF

    net = Musicnn(variables)
    idct = tf.constant(inverse_dct_matrix())
    linear = {} if head is None else {name: (tf.constant(h.weight.astype(np.float32)), tf.constant(
        h.bias.astype(np.float32))) for name, h in linear_parts(head).items()}

    def genre_probs(embedding: Any) -> Any:
        def softmax(name: str) -> Any:
            w, b = linear[name]
            return tf.nn.softmax(tf.matmul(embedding, w) + b)

        if "gate" not in linear:
            return softmax("head")
        clean = softmax("gate")[:, 1:]  # trainer.tagger.mixture.GatedHead, the same sums
        return clean * softmax("clean") + (1.0 - clean) * softmax("room")

    with_tags = tags
    sensor_w = [tf.constant(h.weight.astype(np.float32)) for h in sensor_heads]
    sensor_b = [tf.constant(h.bias.astype(np.float32)) for h in sensor_heads]

    @tf.function(input_signature=[tf.TensorSpec((1, PATCH_FRAMES, N_MELS), tf.float32)])  # type: ignore[untyped-decorator]
    def model(cepstra: Any) -> Any:
        log_mel = tf.matmul(cepstra, idct)
        if level:
            log_mel = _at_level(tf, log_mel)
        tag_scores, mean_pool, max_pool, penultimate = net.forward_lite(log_mel)  # XNNPACK-friendly layout, same sums
        embedding = tf.concat([mean_pool, max_pool, penultimate], axis=1)
        if not linear:
            return tf.concat([tag_scores, embedding], axis=1)
        probs = genre_probs(embedding)
        if not with_tags:
            return probs
        # A dict's outputs are ordered by key in the converted model: "genre" (0), "tags" (1), "tags_sensors" (2).
        out = {"genre": probs, "tags": tag_scores}
        if sensor_w:
            out["tags_sensors"] = tf.concat([tf.nn.softmax(tf.matmul(embedding, w) + b)[:, 1:]
                                             for w, b in zip(sensor_w, sensor_b, strict=True)], axis=1)
        return out

    converter = tf.lite.TFLiteConverter.from_concrete_functions([model.get_concrete_function()], model)
    if float16:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    with contextlib.redirect_stdout(io.StringIO()):  # the converter prints the traced signature
        return bytes(converter.convert())


def _at_level(tf: Any, log_mel: Any) -> Any:
    """``log10(10000 g x + 1)`` from ``log10(10000 x + 1)``: ``g`` brings the window's mean mel power x to
    :data:`LEVEL_DBFS`'s, boosting by at most :data:`MAX_BOOST_DB`. A normalised window stays within the bound
    the pruned front end assumes (``musicnn.LOG_MEL_MAX``): no mel value can exceed the window's 188 x 96 values
    times the target mean (~2800), 24 times under float16's largest."""
    # 10000 x, never below 0: the float16-stored inverse DCT leaves near-silent bands a little under 0, and a 30 dB
    # boost of that made log() of a negative number (NaN) in quiet noise windows just above the silence gate.
    scaled = tf.maximum(tf.exp(log_mel * _LN10) - 1.0, 0.0)
    mean = tf.reduce_mean(scaled, axis=[1, 2], keepdims=True) / 10000.0
    gain = tf.minimum(_TARGET_MEAN_MEL / tf.maximum(mean, 1e-30), 10.0 ** (MAX_BOOST_DB / 10.0))
    return tf.math.log(gain * scaled + 1.0) / _LN10


def embedding_model(cache_dir: Path) -> Path:
    """The embedding model's file, built once per checkpoint and export version under ``cache_dir/teacher``."""
    checkpoint = checkpoint_dir(cache_dir)
    digest = hashlib.sha256((checkpoint / ".index").read_bytes())
    digest.update((checkpoint / ".data-00000-of-00001").read_bytes())
    for code in (Path(__file__), Path(__file__).parents[1] / "teacher" / "musicnn.py"):
        digest.update(code.read_bytes())
    target = cache_dir / "teacher" / f"embedding-v{EXPORT_VERSION}-{digest.hexdigest()[:12]}.tflite"
    if not target.is_file():
        log.info("tagger: exporting the embedding model (float16 weights) to %s", target)
        data = convert(read_checkpoint(checkpoint), None)
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(data)
        tmp.replace(target)
    return target


def bundle_model(cache_dir: Path, head: Head, sensor_heads: Sequence[LinearHead] = ()) -> bytes:
    """The shipped model: the frozen tagger, ``head`` and the ``sensor_heads`` in one graph."""
    return convert(read_checkpoint(checkpoint_dir(cache_dir)), head, sensor_heads=sensor_heads)
