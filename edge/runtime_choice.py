"""Which TFLite runtime provides the Interpreter: the one place that chooses (numpy-free, cheap to import).

Preference: ai_edge_litert, then tflite_runtime, then tensorflow.lite (a last resort on a PC; never
imported when a lighter runtime exists, since tensorflow costs ~500 MB and ~2 s to import and breaks
tflite_runtime if loaded first). ``GENRE_TFLITE_RUNTIME`` forces one (for benchmarks). The daemon asks
for :func:`lite_runtime`, which never picks tensorflow.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from typing import Any

from edge.errors import ModelBundleError

LITE_RUNTIMES = ("ai_edge_litert", "tflite_runtime")
RUNTIMES = (*LITE_RUNTIMES, "tensorflow")
ENV_VAR = "GENRE_TFLITE_RUNTIME"
# (module to import, attribute path to the Interpreter class). TensorFlow's is reached as the attribute
# ``tf.lite.Interpreter``: importing the submodule ``tensorflow.lite`` gives a package without it (TF 2.21).
_MODULES = {
    "ai_edge_litert": ("ai_edge_litert.interpreter", "Interpreter"),
    "tflite_runtime": ("tflite_runtime.interpreter", "Interpreter"),
    "tensorflow": ("tensorflow", "lite.Interpreter"),
}


def load_interpreter_class(runtime: str | None = None) -> tuple[Any, str]:
    """The Interpreter class of the first importable runtime (or of ``runtime`` if named)."""
    wanted = runtime or os.environ.get(ENV_VAR) or None
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


def lite_runtime(configured: str = "") -> str:
    """The TFLite runtime for a device: never tensorflow (the last resort would import ~500 MB on a Pi).

    ``configured`` (``model.runtime``) wins, then ``$GENRE_TFLITE_RUNTIME`` if it names a lite runtime,
    then the first of ai_edge_litert / tflite_runtime that is installed.
    """
    env = os.environ.get(ENV_VAR, "")
    for name in (configured, env if env in LITE_RUNTIMES else "", *LITE_RUNTIMES):
        if name and importlib.util.find_spec(name) is not None:
            return name
    raise ModelBundleError("no TFLite runtime installed: pip install ai-edge-litert (or tflite-runtime on Python 3.11)")
