"""Keras -> float and full-integer int8 TFLite, and the int8-vs-float parity check.

Exported models run through ``edge.runtime.TfliteModel`` (the daemon's own wrapper, so int8 is
(de)quantised by the same code) on its ``tensorflow`` runtime: TensorFlow is already loaded in the
trainer, and importing tflite_runtime after tensorflow breaks it.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edge.errors import EX_SOFTWARE, GenreError
from edge.runtime import TfliteModel

FloatArray = npt.NDArray[np.float32]
PARITY_MIN_AGREEMENT = 0.9  # int8 vs float top-1 on test windows
PARITY_MAX_MEAN_ABS = 0.05  # mean |p_int8 - p_float| over all window probabilities
DECISIVE_MARGIN = 0.05  # float top-1 minus runner-up; ~13 int8 output steps of 1/256


class ParityError(GenreError):
    """The int8 model disagrees with the float model: quantisation went wrong."""

    exit_code = EX_SOFTWARE


def to_tflite(model: Any, representative: FloatArray | None) -> bytes:
    """Float TFLite when ``representative`` is None, else full-integer int8 (int8 input and output)."""
    import tensorflow as tf  # lazy: importing the trainer (`genre-train --help`, feature workers) must not load TF

    input_shape = tuple(int(d) for d in model.inputs[0].shape[1:])
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if representative is not None:
        rep = representative.astype(np.float32)

        def gen() -> Iterator[list[FloatArray]]:
            for i in range(rep.shape[0]):
                yield [rep[i : i + 1].reshape((1, *input_shape))]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = gen
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    # The converter prints the traced signature to stdout (pages of "Captures:"); keep the CLI readable.
    with contextlib.redirect_stdout(io.StringIO()):
        return bytes(converter.convert())


class TfliteRunner:
    """One exported model (built once) in edge's ``TfliteModel`` on tf.lite; batches of inputs at a time.

    The trainer has tensorflow imported, which breaks tflite_runtime in the same process, so the
    runtime is named rather than chosen.
    """

    def __init__(self, model: Path | bytes) -> None:
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated.*")
        self._model = TfliteModel(model, num_threads=1, runtime="tensorflow")

    def __call__(self, inputs: FloatArray) -> FloatArray:
        """Probabilities (n, labels) for each model input (n, ...)."""
        result = np.zeros((inputs.shape[0], self._model.output_size), dtype=np.float32)
        for i in range(inputs.shape[0]):
            result[i] = self._model.predict(inputs[i])
        return result

    def with_output(self, inputs: FloatArray, k: int) -> tuple[FloatArray, FloatArray]:
        """(probabilities (n, labels), output ``k`` >= 1 (n, its size)) for each model input (n, ...)."""
        probs = np.zeros((inputs.shape[0], self._model.output_size), dtype=np.float32)
        extra = np.zeros((inputs.shape[0], self._model.output_sizes[k]), dtype=np.float32)
        for i in range(inputs.shape[0]):
            probs[i] = self._model.predict(inputs[i])
            extra[i] = self._model.output(k)
        return probs, extra

    def predict(self, window: FloatArray) -> FloatArray:
        """One model input -> probabilities: the ``predict`` contract of edge.runtime.TfliteModel."""
        return self._model.predict(window)


def run_tflite(model_path: Path | bytes, inputs: FloatArray) -> FloatArray:
    """Probabilities for each model input (n, ...) via edge's TfliteModel on tf.lite."""
    return TfliteRunner(model_path)(inputs)


@dataclass
class Parity:
    """int8 vs float agreement. ``decisive_agreement`` counts only windows where the float model's top-1
    beats its runner-up by more than ``DECISIVE_MARGIN``: near-ties (an untrained smoke-test model is all
    ties) flip under any rounding and say nothing about the quantisation."""

    top1_agreement: float
    decisive_agreement: float
    decisive_windows: int
    mean_abs_prob_diff: float
    windows: int

    @property
    def ok(self) -> bool:
        return self.decisive_agreement >= PARITY_MIN_AGREEMENT and self.mean_abs_prob_diff <= PARITY_MAX_MEAN_ABS

    def to_dict(self) -> dict[str, Any]:
        return {"top1_agreement": self.top1_agreement, "decisive_agreement": self.decisive_agreement,
                "decisive_windows": self.decisive_windows, "mean_abs_prob_diff": self.mean_abs_prob_diff,
                "windows": self.windows, "ok": self.ok,
                "thresholds": {"min_decisive_agreement": PARITY_MIN_AGREEMENT, "decisive_margin": DECISIVE_MARGIN,
                               "max_mean_abs_prob_diff": PARITY_MAX_MEAN_ABS}}


def parity(float_probs: FloatArray, int8_probs: FloatArray) -> Parity:
    """Compare window probabilities (n, classes) of the float and int8 models on the same inputs."""
    same = float_probs.argmax(axis=1) == int8_probs.argmax(axis=1)
    top2 = np.sort(float_probs, axis=1)[:, -2:]
    decisive = (top2[:, 1] - top2[:, 0]) > DECISIVE_MARGIN
    return Parity(
        top1_agreement=float(np.mean(same)),
        decisive_agreement=float(np.mean(same[decisive])) if decisive.any() else 1.0,
        decisive_windows=int(decisive.sum()),
        mean_abs_prob_diff=float(np.mean(np.abs(float_probs - int8_probs))),
        windows=int(float_probs.shape[0]),
    )


def check_parity(float_model: Path | bytes, int8_model: Path | bytes, inputs: FloatArray) -> Parity:
    """Run both models on ``inputs``; raise ParityError naming the numbers if int8 drifts from float."""
    result = parity(run_tflite(float_model, inputs), run_tflite(int8_model, inputs))
    if not result.ok:
        raise ParityError(
            f"int8 model disagrees with float: top-1 agreement {result.decisive_agreement:.3f} on "
            f"{result.decisive_windows} decisive windows "
            f"(need >= {PARITY_MIN_AGREEMENT}), mean |dp| {result.mean_abs_prob_diff:.4f} "
            f"(need <= {PARITY_MAX_MEAN_ABS}); check the quantisation (representative data, input scale)"
        )
    return result
