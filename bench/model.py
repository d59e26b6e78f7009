"""Which model the bench measures: the shipped bundle (edge/models/default), else a tiny test bundle.

The tiny bundle (tests/support/tiny_model.py: an untrained Conv1D, int8 + float) only stands in until the trainer
ships a model; every table says which one was used.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from edge.bundle import MODEL_FILE, SPEC_FILE, default_bundle_dir
from tests.support.tiny_model import build_tiny_bundle

FLOAT_FILE = "model_float.tflite"


@dataclass(frozen=True)
class ModelChoice:
    bundle: Path
    kind: str  # "shipped" or "tiny test model"
    float_model: Path | None

    @property
    def int8_model(self) -> Path:
        return self.bundle / MODEL_FILE

    def describe(self) -> str:
        float_text = self.float_model.name if self.float_model else "no float model in the bundle"
        return f"{self.kind} ({self.bundle}; int8 {MODEL_FILE}, float: {float_text})"


def choose_model(work_dir: Path) -> ModelChoice:
    shipped = default_bundle_dir()
    if (shipped / MODEL_FILE).is_file() and (shipped / SPEC_FILE).is_file():
        flt = shipped / FLOAT_FILE
        return ModelChoice(shipped, "shipped", flt if flt.is_file() else None)
    return tiny_model(work_dir)


def tiny_model(work_dir: Path) -> ModelChoice:
    """tests/support/tiny_model.py's int8 + float bundle, built once (TensorFlow, in a subprocess) and kept."""
    dest = work_dir / "tiny-bundle"
    if not (dest / MODEL_FILE).is_file():
        tmp = work_dir / "tiny-bundle.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        build_tiny_bundle(tmp)
        tmp.rename(dest)
    flt = dest / FLOAT_FILE
    return ModelChoice(dest, "tiny test model", flt if flt.is_file() else None)


def bench_cache_dir() -> Path:
    """Kept between runs: the tiny model takes ~20 s of TensorFlow to build."""
    path = Path(tempfile.gettempdir()) / "genre-pi-bench"
    path.mkdir(parents=True, exist_ok=True)
    return path


def model_from_dir(bundle: Path) -> ModelChoice:
    """The choice made by the parent process, handed to a section as ``--model-dir``."""
    bundle = bundle.resolve()  # the daemon runs in its own working directory
    kind = "shipped" if bundle.resolve() == default_bundle_dir().resolve() else "tiny test model"
    flt = bundle / FLOAT_FILE
    return ModelChoice(bundle, kind, flt if flt.is_file() else None)
