"""Build a tiny but real int8 TFLite genre model + bundle for tests, with TensorFlow in a subprocess.

TensorFlow must never be imported in the pytest process (it breaks tflite_runtime there), so
``build_tiny_bundle`` runs this file as a script. The model is untrained (seeded random weights): tests
check plumbing and quantisation, not accuracy.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

LABELS = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")


def build_tiny_bundle(dest: Path, labels: tuple[str, ...] = LABELS, timeout_s: float = 180.0) -> Path:
    """Write model.tflite (int8), model_float.tflite and model.json into ``dest``; return ``dest``."""
    cmd = [sys.executable, str(Path(__file__).resolve()), str(dest), "--labels", ",".join(labels)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    if proc.returncode != 0:
        raise RuntimeError(f"tiny model build failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return dest


def _build(dest: Path, labels: tuple[str, ...]) -> None:
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np
    import tensorflow as tf

    from edge.bundle import write_bundle_json
    from edge.spec import FeatureSpec
    from trainer.export.tflite import to_tflite

    spec = FeatureSpec(labels=labels, mean=(0.0,) * 13, std=(1.0,) * 13)
    frames, coeffs = spec.input_shape
    tf.keras.utils.set_random_seed(7)
    model = tf.keras.Sequential(
        [
            tf.keras.Input((frames, coeffs)),
            tf.keras.layers.Conv1D(8, 5, activation="relu"),
            tf.keras.layers.GlobalAveragePooling1D(),
            tf.keras.layers.Dense(len(labels), activation="softmax"),
        ]
    )
    rng = np.random.default_rng(7)
    sample = rng.standard_normal((64, frames, coeffs)).astype(np.float32)

    float_bytes, int8_bytes = to_tflite(model, None), to_tflite(model, sample)  # the trainer's own export
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "model.tflite").write_bytes(int8_bytes)
    (dest / "model_float.tflite").write_bytes(float_bytes)
    write_bundle_json(dest, spec, {"version": "tiny-test", "recipe": "tiny", "params": int(model.count_params())})


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("dest", type=Path)
    parser.add_argument("--labels", default=",".join(LABELS))
    args = parser.parse_args()
    _build(args.dest, tuple(args.labels.split(",")))
