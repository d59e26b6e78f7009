"""TFLite inference for one MFCC window, with int8 (de)quantisation hidden from callers.

A model has one input and one or more outputs: output 0 is what ``predict``/``run`` return (the genre
probabilities, or the embedding model's rows); a tagger bundle's output 1 holds its tag scores, read after
the same invoke with :meth:`TfliteModel.output`.

Every caller runs models through :class:`TfliteModel`: the daemon and ``genre-predict`` on a lite
runtime, the trainer on ``tf.lite`` (``runtime="tensorflow"``: tensorflow is already loaded there, and
importing tflite_runtime after it breaks the latter). Which runtime is chosen is ``edge.runtime_choice``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edge.errors import ModelBundleError
from edge.native_stderr import native_stderr_to_debug
from edge.runtime_choice import RUNTIMES, load_interpreter_class

__all__ = ["RUNTIMES", "TfliteModel", "load_interpreter_class"]

log = logging.getLogger(__name__)
IN_MEMORY = Path("<in memory>")


class TfliteModel:
    """One loaded .tflite model; ``predict`` takes a float window and returns float probabilities.

    The input tensor is preallocated in the model's own dtype; for int8 models the float window is
    quantised with the input's scale/zero point and the output dequantised, so callers never see
    integers.
    """

    def __init__(self, model: str | Path | bytes, num_threads: int = 1, runtime: str | None = None) -> None:
        """``model`` is a .tflite path or the model's bytes (the trainer checks what it just converted)."""
        self.path = IN_MEMORY if isinstance(model, bytes) else Path(model)
        source = {"model_content": model} if isinstance(model, bytes) else {"model_path": str(self.path)}
        interpreter_cls, self.runtime = load_interpreter_class(runtime)
        try:
            with native_stderr_to_debug(log, "tflite"):
                self._interp = interpreter_cls(**source, num_threads=num_threads)
                self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelBundleError(f"{self.path}: not a loadable TFLite model ({_first_line(exc)})") from None
        inputs = self._interp.get_input_details()
        outputs = self._interp.get_output_details()
        if len(inputs) != 1 or not outputs:
            raise ModelBundleError(f"{self.path}: expected 1 input and at least 1 output tensor")
        self._in, self._out = inputs[0], outputs[0]
        self._extra = outputs[1:]
        self.output_sizes = tuple(int(np.prod(o["shape"])) for o in outputs)
        self.input_shape: tuple[int, ...] = tuple(int(d) for d in self._in["shape"])
        self.output_size = int(np.prod(self._out["shape"]))
        self.input_dtype = np.dtype(self._in["dtype"])
        self.output_dtype = np.dtype(self._out["dtype"])
        self._in_scale, self._in_zero = _quant(self._in)
        self._out_scale, self._out_zero = _quant(self._out)
        self._buffer = np.zeros(self.input_shape, dtype=self.input_dtype)
        self._scratch = np.zeros(self.input_shape, dtype=np.float32)
        log.debug("loaded %s with %s (input %s %s)", self.path.name, self.runtime, self.input_shape, self.input_dtype)

    @property
    def input_elements(self) -> int:
        """Values in one input example (batch dimension excluded)."""
        return int(np.prod(self.input_shape[1:]))

    @property
    def quantized(self) -> bool:
        return self.input_dtype == np.int8

    def predict(self, window: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """One normalised window (frames, coefficients) -> class probabilities (n_labels,)."""
        out = self.run(window)
        np.clip(out, 0.0, None, out=out)
        total = float(out.sum())
        # int8 softmax outputs sum to 1 only approximately; renormalise so log-probs are comparable.
        return out / total if total > 0 else np.full_like(out, 1.0 / out.size)

    def run(self, window: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """One window -> the model's output as float, flattened (embeddings, tag scores: no renormalising)."""
        src = np.asarray(window, dtype=np.float32).reshape(self._buffer.shape)
        if self._in_scale:
            # Quantise into scratch space: the caller's window (often a read-only ring view) stays intact.
            scratch = self._scratch
            np.divide(src, self._in_scale, out=scratch)
            np.rint(scratch, out=scratch)
            scratch += self._in_zero
            np.clip(scratch, -128, 127, out=scratch)
            self._buffer[...] = scratch
        else:
            self._buffer[...] = src
        self._interp.set_tensor(self._in["index"], self._buffer)
        self._interp.invoke()
        raw = self._interp.get_tensor(self._out["index"]).reshape(-1)
        out: npt.NDArray[np.float32] = raw.astype(np.float32)
        if self._out_scale:
            out = (out - self._out_zero) * self._out_scale
        return out


    def output(self, k: int) -> npt.NDArray[np.float32]:
        """Output ``k`` >= 1 of the last ``run``/``predict`` as float, flattened (a copy)."""
        details = self._extra[k - 1]
        out: npt.NDArray[np.float32] = self._interp.get_tensor(details["index"]).reshape(-1).astype(np.float32)
        scale, zero = _quant(details)
        return (out - zero) * scale if scale else out


def _quant(details: dict[str, Any]) -> tuple[float, int]:
    scale, zero = details.get("quantization", (0.0, 0))
    return float(scale), int(zero)


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
