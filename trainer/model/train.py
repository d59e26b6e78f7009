"""Model definitions and the training loop (the only module besides ``export.tflite`` that imports TensorFlow).

TensorFlow is imported lazily inside functions: the CLI extracts features in worker processes first,
and nothing here runs at import time.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from edge.features import normalize_window
from edge.spec import FeatureSpec
from trainer.augment.windows import cut_windows, mixup, one_hot, sample_crops, spec_augment
from trainer.model.recipes import Recipe
from trainer.teacher.targets import distill_targets

log = logging.getLogger(__name__)
FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]
_configured: dict[str, Any] = {}


def configure_tf(seed: int, threads: int | None) -> Any:
    """Import TensorFlow with deterministic ops; ``threads`` pins intra-op parallelism (1 = bit-reproducible)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf  # lazy: after the env var above; `genre-train --help` and feature workers never load TF

    if not _configured:
        if threads:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        tf.config.experimental.enable_op_determinism()
        _configured["threads"] = threads
    tf.keras.utils.set_random_seed(seed)
    return tf


def build_model(recipe: Recipe, spec: FeatureSpec, n_classes: int) -> Any:
    """A compiled-free Keras model for ``recipe.model`` taking (frames, n_mfcc) windows."""
    import keras  # lazy, like TensorFlow (configure_tf): only training loads it
    from keras import layers  # lazy: see the line above

    frames, coefs = spec.input_shape
    if recipe.model == "velardo_cnn2d":
        inp = keras.Input((frames, coefs, 1), name="mfcc")
        x = inp
        for filters, kernel, pool in ((32, 3, 3), (32, 3, 3), (32, 2, 2)):
            x = layers.Conv2D(filters, kernel, activation="relu")(x)
            x = layers.MaxPooling2D(pool, strides=2, padding="same")(x)
            x = layers.BatchNormalization()(x)
        x = layers.Flatten()(x)
        x = layers.Dense(64, activation="relu")(x)
        x = layers.Dropout(recipe.dropout)(x)
        out = layers.Dense(n_classes, activation="softmax", name="probs")(x)
        return keras.Model(inp, out, name="velardo_cnn2d")
    if recipe.model == "tcn1d":
        w = recipe.width
        inp = keras.Input((frames, coefs), name="mfcc")
        x = layers.Conv1D(w, 5, padding="same", use_bias=False)(inp)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
        for filters, kernel, pool in ((w * 3 // 2, 5, True), (w * 2, 5, True), (w * 2, 3, False)):
            x = layers.SeparableConv1D(filters, kernel, padding="same", use_bias=False)(x)
            x = layers.BatchNormalization()(x)
            x = layers.ReLU()(x)
            if pool:
                x = layers.MaxPooling1D(2)(x)
        x = layers.GlobalAveragePooling1D()(x)
        x = layers.Dropout(recipe.dropout)(x)
        out = layers.Dense(n_classes, activation="softmax", name="probs")(x)
        return keras.Model(inp, out, name="tcn1d")
    raise ValueError(f"unknown model {recipe.model!r}")


@dataclass
class TrainedModel:
    model: Any
    spec: FeatureSpec
    recipe: Recipe
    history: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0
    windows_seen: int = 0

    @property
    def params(self) -> int:
        return int(self.model.count_params())


def prepare(windows: FloatArray, spec: FeatureSpec, recipe: Recipe) -> FloatArray:
    """Raw windows -> model input exactly as the daemon builds it (``normalize_window``)."""
    x = normalize_window(windows, spec)
    out: FloatArray = np.expand_dims(x, -1) if recipe.model == "velardo_cnn2d" else x
    return out


def predict(trained: TrainedModel, windows: FloatArray, batch: int = 1024) -> FloatArray:
    """Window probabilities (n, n_classes) from raw windows."""
    if windows.shape[0] == 0:
        return np.zeros((0, len(trained.spec.labels)), dtype=np.float32)
    x = prepare(windows, trained.spec, trained.recipe)
    parts = [np.asarray(trained.model(x[i : i + batch], training=False)) for i in range(0, x.shape[0], batch)]
    out: FloatArray = np.concatenate(parts).astype(np.float32)
    return out


def train(
    recipe: Recipe,
    spec: FeatureSpec,
    versions: Sequence[Sequence[FloatArray]],
    labels: IntArray,
    *,
    seed: int,
    threads: int | None = None,
    monitor: tuple[FloatArray, IntArray] | None = None,
    fixed_windows: tuple[FloatArray, IntArray] | None = None,
    teacher: Sequence[FloatArray] | None = None,
) -> TrainedModel:
    """Train ``recipe`` on clips (``versions[i]``: clip i's clean frames then its augmented copies).

    ``fixed_windows`` overrides window sampling (the leaky segment split trains on given segments).
    ``monitor`` (raw windows, labels) is only logged per epoch for the curves, never used to select.
    ``teacher[i]``: clip i's soft target per window start frame (distillation, ``recipe.teacher_weight``).
    """
    tf = configure_tf(seed, threads)
    import keras  # lazy: only after configure_tf has seeded and pinned TensorFlow

    rng = np.random.default_rng(seed)
    n_classes = len(spec.labels)
    started = time.perf_counter()
    if fixed_windows is not None:
        seg_x, seg_y = fixed_windows
    elif recipe.train_windows == "segments":
        cut = [cut_windows(v[0], spec, spec.frames_per_window)[:10] for v in versions]
        seg_x = np.concatenate(cut)
        seg_y = np.concatenate([np.full(len(c), y, dtype=np.int64) for c, y in zip(cut, labels, strict=True)])
    else:
        seg_x, seg_y = np.zeros((0,), dtype=np.float32), np.zeros((0,), dtype=np.int64)
    per_epoch = seg_x.shape[0] if seg_x.size else recipe.crops_per_clip * len(versions)
    steps = max(1, -(-per_epoch // recipe.batch_size)) * recipe.epochs
    lr: Any = recipe.learning_rate
    if recipe.cosine_decay:
        lr = keras.optimizers.schedules.CosineDecay(recipe.learning_rate, decay_steps=steps, alpha=0.02)
    model = build_model(recipe, spec, n_classes)
    model.compile(
        optimizer=keras.optimizers.Adam(lr),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=recipe.label_smoothing),
        metrics=["accuracy"],
    )
    trained = TrainedModel(model, spec, recipe)
    history: dict[str, list[float]] = {"loss": [], "accuracy": []}
    if monitor is not None:
        history["monitor_accuracy"] = []
    fixed_input = prepare(seg_x, spec, recipe) if seg_x.size else None
    for epoch in range(recipe.epochs):
        if fixed_input is not None:
            order = rng.permutation(fixed_input.shape[0])
            x, y = fixed_input[order], one_hot(seg_y[order], n_classes)
        else:
            clean = np.empty((per_epoch, *spec.input_shape), dtype=np.float32) if recipe.consistency else None
            soft = np.empty((per_epoch, n_classes), dtype=np.float32) if teacher is not None else None
            raw, ys = sample_crops(versions, labels, per_epoch, recipe, spec, rng, clean_out=clean, teacher=teacher,
                                   teacher_out=soft)
            x, y = prepare(raw, spec, recipe), one_hot(ys, n_classes)
            if soft is not None:
                # CE against this mix = (1 - w) CE(label) + w KL(teacher || student) + const.
                y = distill_targets(y, soft, recipe.teacher_weight)
            if clean is not None:
                weight = recipe.consistency * min(1.0, epoch / max(1.0, recipe.epochs / 2))
                y = (1 - weight) * y + weight * predict(trained, clean)
        if recipe.spec_augment:
            x = spec_augment(x, rng)
        if recipe.mixup_alpha > 0:
            x, y = mixup(x, y, recipe.mixup_alpha, rng)
        # train_on_batch, not fit(): fit() builds a tf.data pipeline per call, ~1.5 s/epoch of pure overhead here.
        losses, accs, sizes = [], [], []
        for i in range(0, x.shape[0], recipe.batch_size):
            logs = model.train_on_batch(x[i : i + recipe.batch_size], y[i : i + recipe.batch_size], return_dict=True)
            losses.append(float(logs["loss"]))
            accs.append(float(logs["accuracy"]))
            sizes.append(min(recipe.batch_size, x.shape[0] - i))
        history["loss"].append(float(np.average(losses, weights=sizes)))
        history["accuracy"].append(float(np.average(accs, weights=sizes)))
        trained.windows_seen += x.shape[0]
        if monitor is not None:
            probs = predict(trained, monitor[0])
            history["monitor_accuracy"].append(float(np.mean(probs.argmax(axis=1) == monitor[1])))
        log.debug("epoch %d/%d loss %.4f", epoch + 1, recipe.epochs, history["loss"][-1])
    del tf
    trained.history = history
    trained.seconds = time.perf_counter() - started
    return trained
