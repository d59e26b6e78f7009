"""TFLite inference for one MFCC window, with int8 (de)quantisation hidden from callers.

Runtime preference: ai_edge_litert, then tflite_runtime, then tensorflow.lite (a last resort on a
PC; never imported when a lighter runtime exists, since tensorflow costs ~500 MB and ~2 s to import
and breaks tflite_runtime if loaded first). ``GENRE_TFLITE_RUNTIME`` forces one (for benchmarks).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edge.errors import ModelBundleError

log = logging.getLogger(__name__)

RUNTIMES = ("ai_edge_litert", "tflite_runtime", "tensorflow")
# (module to import, attribute path to the Interpreter class). TensorFlow's is reached as the attribute
# ``tf.lite.Interpreter``: importing the submodule ``tensorflow.lite`` gives a package without it (TF 2.21).
_MODULES = {
    "ai_edge_litert": ("ai_edge_litert.interpreter", "Interpreter"),
    "tflite_runtime": ("tflite_runtime.interpreter", "Interpreter"),
    "tensorflow": ("tensorflow", "lite.Interpreter"),
}


def load_interpreter_class(runtime: str | None = None) -> tuple[Any, str]:
    """The Interpreter class of the first importable runtime (or of ``runtime`` if named)."""
    wanted = runtime or os.environ.get("GENRE_TFLITE_RUNTIME") or None
    candidates = (wanted,) if wanted else RUNTIMES
    errors = []
    for name in candidates:
        if name not in _MODULES:
            raise ModelBundleError(f"unknown TFLite runtime {name!r}; choose one of {', '.join(RUNTIMES)}")
        module_name, attr_path = _MODULES[name]
        try:
            found: Any = importlib.import_module(module_name)
            for attr in attr_path.split("."):
                found = getattr(found, attr)
        except (ImportError, AttributeError) as exc:
            errors.append(f"{name}: {exc}")
            continue
        return found, name
    raise ModelBundleError("no TFLite runtime is installed (" + "; ".join(errors) + ")")


class TfliteModel:
    """One loaded .tflite model; ``predict`` takes a float window and returns float probabilities.

    The input tensor is preallocated in the model's own dtype; for int8 models the float window is
    quantised with the input's scale/zero point and the output dequantised, so callers never see
    integers.
    """

    def __init__(self, path: str | Path, num_threads: int = 1, runtime: str | None = None) -> None:
        self.path = Path(path)
        interpreter_cls, self.runtime = load_interpreter_class(runtime)
        try:
            with _native_stderr_to_log():
                self._interp = interpreter_cls(model_path=str(self.path), num_threads=num_threads)
                self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelBundleError(f"{self.path}: not a loadable TFLite model ({_first_line(exc)})") from None
        inputs = self._interp.get_input_details()
        outputs = self._interp.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelBundleError(f"{self.path}: expected 1 input and 1 output tensor")
        self._in, self._out = inputs[0], outputs[0]
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
        out = raw.astype(np.float32)
        if self._out_scale:
            out = (out - self._out_zero) * self._out_scale
        np.clip(out, 0.0, None, out=out)
        total = float(out.sum())
        # int8 softmax outputs sum to 1 only approximately; renormalise so log-probs are comparable.
        return out / total if total > 0 else np.full_like(out, 1.0 / out.size)


@contextlib.contextmanager
def _native_stderr_to_log() -> Iterator[None]:
    """Send what the C++ runtime writes to fd 2 (an XNNPACK banner on every load) to the debug log.

    Without this, every start puts an ``INFO:`` line into journald and CLI output that is not ours.
    """
    sys.stderr.flush()
    try:
        sink_file = tempfile.TemporaryFile()  # noqa: SIM115 -- entered below, once we know it exists
    except OSError as exc:  # no writable temp dir (read-only or full): keep the banner rather than fail to load
        log.debug("cannot divert native stderr (%s)", exc)
        yield
        return
    saved = os.dup(2)
    with sink_file as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            for line in sink.read().decode(errors="replace").splitlines():
                if line.strip():
                    log.debug("tflite: %s", line)


def _quant(details: dict[str, Any]) -> tuple[float, int]:
    scale, zero = details.get("quantization", (0.0, 0))
    return float(scale), int(zero)


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
