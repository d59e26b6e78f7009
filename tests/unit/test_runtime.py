"""TFLite runtime + bundle loading with a real (tiny) int8 model built by TensorFlow in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from edge.bundle import load_bundle
from edge.errors import ModelBundleError, UsageError
from edge.runtime import TfliteModel


def test_int8_model_agrees_with_its_float_twin(tiny_bundle: Path) -> None:
    bundle = load_bundle(tiny_bundle)
    twin = TfliteModel(tiny_bundle / "model_float.tflite")
    assert bundle.model.quantized and not twin.quantized
    rng = np.random.default_rng(0)
    decided = agree = 0
    worst = 0.0
    for _ in range(200):
        window = rng.standard_normal(bundle.spec.input_shape).astype(np.float32)  # the calibration distribution
        p8, pf = bundle.model.predict(window), twin.predict(window)
        assert abs(float(p8.sum()) - 1.0) < 1e-5
        worst = max(worst, float(np.abs(p8 - pf).max()))
        top2 = np.sort(pf)[-2:]
        # An untrained model often has near-ties; int8 rounding may flip those, which is not a parity bug.
        if top2[1] - top2[0] >= 0.02:
            decided += 1
            agree += int(np.argmax(p8) == np.argmax(pf))
    assert decided >= 20, f"only {decided}/200 windows had a float top-1 margin >= 0.02"
    assert agree >= 0.95 * decided, f"int8/float top-1 agreement {agree}/{decided} where float was decided"
    assert worst < 0.05, f"largest probability difference int8 vs float {worst:.4f}"


def test_predict_leaves_a_read_only_input_untouched(tiny_bundle: Path) -> None:
    bundle = load_bundle(tiny_bundle)
    window = np.linspace(-3, 3, 126 * 13, dtype=np.float32).reshape(126, 13)
    before = window.copy()
    window.flags.writeable = False
    bundle.model.predict(window)
    np.testing.assert_array_equal(window, before)


def test_one_window_runs_well_under_a_millisecond(tiny_bundle: Path) -> None:
    bundle = load_bundle(tiny_bundle)
    window = np.zeros(bundle.spec.input_shape, dtype=np.float32)
    times = []
    for _ in range(200):
        t0 = time.perf_counter()
        bundle.model.predict(window)
        times.append(time.perf_counter() - t0)
    median_ms = float(np.median(times)) * 1000
    assert median_ms < 1.0, f"median {median_ms:.3f} ms per window with {bundle.model.runtime}"


@pytest.mark.parametrize("runtime", ["ai_edge_litert", "tflite_runtime"])
def test_lite_runtimes_load_without_importing_tensorflow(tiny_bundle: Path, runtime: str) -> None:
    code = (
        "import sys, numpy as np\n"
        "from edge.bundle import load_bundle\n"
        f"b = load_bundle({str(tiny_bundle)!r}, runtime={runtime!r})\n"
        "p = b.model.predict(np.zeros(b.spec.input_shape, np.float32))\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n"
        "print(b.model.runtime, round(float(p.sum()), 4))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == [runtime, "1.0"]


def test_tensorflow_is_the_last_resort_runtime_and_works(tiny_bundle: Path) -> None:
    # Only on a PC with the train extra; checked in a subprocess because tensorflow breaks tflite_runtime.
    code = (
        "import numpy as np\n"
        "from edge.bundle import load_bundle\n"
        f"b = load_bundle({str(tiny_bundle)!r}, runtime='tensorflow')\n"
        "print(b.model.runtime, round(float(b.model.predict(np.zeros(b.spec.input_shape, np.float32)).sum()), 3))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["tensorflow", "1.0"]


def _rewrite_spec(bundle: Path, **changes: object) -> None:
    doc = json.loads((bundle / "model.json").read_text())
    doc["feature_spec"].update(changes)
    (bundle / "model.json").write_text(json.dumps(doc))


def test_missing_bundle_dir_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        load_bundle(tmp_path / "nope")


@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        (lambda b: (b / "model.json").unlink(), "model.json: missing"),
        (lambda b: (b / "model.tflite").unlink(), "model.tflite: missing"),
        (lambda b: (b / "model.json").write_text("{not json"), "invalid JSON"),
        (lambda b: (b / "model.tflite").write_bytes((b / "model.tflite").read_bytes()[:500]), "not a loadable"),
        (lambda b: _rewrite_spec(b, labels=["a", "b", "c"]), "10 outputs but the spec lists 3 labels"),
        (lambda b: _rewrite_spec(b, n_mfcc=20, n_mels=40, mean=None, std=None), "does not fit"),
        (lambda b: _rewrite_spec(b, spec_version=99), "newer than this software"),
    ],
)
def test_damaged_bundles_fail_with_one_clear_line(bundle_copy: Path, damage, needle: str) -> None:  # type: ignore[no-untyped-def]
    damage(bundle_copy)
    with pytest.raises(ModelBundleError, match=needle) as info:
        load_bundle(bundle_copy)
    assert "\n" not in str(info.value)


def test_a_model_loads_even_without_a_writable_temp_dir(tiny_bundle: Path, tmp_path: Path) -> None:
    # The runtime diverts the C++ banner through a temp file; a read-only or full /tmp must not stop loading.
    code = (
        "import tempfile, numpy as np\n"
        "tempfile.tempdir = '/proc'\n"  # nothing can be created there, even as root
        "from edge.bundle import load_bundle\n"
        f"b = load_bundle({str(tiny_bundle)!r})\n"
        "print(round(float(b.model.predict(np.zeros(b.spec.input_shape, np.float32)).sum()), 3))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "1.0"
