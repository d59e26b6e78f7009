"""Which bundles the bench measures: the shipped one (edge/models/default, the tagger) and the lite MFCC bundle
(edge/models/lite) beside it; a tiny test bundle stands in only when no shipped bundle exists.

The tiny bundle (tests/support/tiny_model.py: an untrained Conv1D, int8 + float) keeps the bench runnable in a
checkout without a trained model; every table says which bundle it measured.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.bundle import MODEL_FILE, SPEC_FILE, default_bundle_dir
from tests.support.tiny_model import build_tiny_bundle

FLOAT_FILE = "model_float.tflite"


def lite_bundle_dir() -> Path:
    """The small int8 MFCC bundle for weaker boards, installed beside the default one."""
    return default_bundle_dir().parent / "lite"


@dataclass(frozen=True)
class ModelChoice:
    bundle: Path
    kind: str  # "shipped", "lite" or "tiny test model"
    float_model: Path | None

    @property
    def model_file(self) -> Path:
        return self.bundle / MODEL_FILE

    @property
    def meta(self) -> dict[str, Any]:
        """model.json as written by the trainer ({} if unreadable: a description must never fail a section)."""
        try:
            doc: dict[str, Any] = json.loads((self.bundle / SPEC_FILE).read_text())
        except (OSError, ValueError):
            return {}
        return doc

    @property
    def front_end(self) -> str:
        return str(self.meta.get("feature_spec", {}).get("front_end", "mfcc"))

    @property
    def hop_s(self) -> float:
        return float(self.meta.get("feature_spec", {}).get("hop_s", 1.0))

    @property
    def quantization(self) -> str:
        return str(self.meta.get("model", {}).get("quantization", "?"))

    @property
    def label(self) -> str:
        """Short row label: "tagger (shipped)" / "lite bundle"."""
        model = self.meta.get("model", {})
        recipe = model.get("recipe", "?")
        if self.kind == "shipped":
            return f"{recipe} (shipped)"
        return "lite bundle" if self.kind == "lite" else self.kind

    def describe(self) -> str:
        model = self.meta.get("model", {})
        spec = self.meta.get("feature_spec", {})
        parts = [
            f"{self.kind} {self.bundle}",
            f"{model.get('recipe', '?')} / {model.get('architecture', '?')}, version {model.get('version', '?')}",
            self.quantization,
            f"front end {self.front_end} at {spec.get('sample_rate', '?')} Hz, hop {self.hop_s:g} s",
        ]
        if self.float_model is not None:
            parts.append(f"float copy {self.float_model.name}")
        return "; ".join(parts)


def choose_model(work_dir: Path) -> ModelChoice:
    shipped = default_bundle_dir()
    if (shipped / MODEL_FILE).is_file() and (shipped / SPEC_FILE).is_file():
        return model_from_dir(shipped)
    return tiny_model(work_dir)


def choose_lite() -> ModelChoice | None:
    """The lite bundle, or None where it is not installed (its rows then say so)."""
    lite = lite_bundle_dir()
    if (lite / MODEL_FILE).is_file() and (lite / SPEC_FILE).is_file():
        return model_from_dir(lite)
    return None


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
    """The choice made by the parent process, handed to a section as ``--model-dir`` / ``--lite-dir``."""
    bundle = bundle.resolve()  # the daemon runs in its own working directory
    if bundle == default_bundle_dir().resolve():
        kind = "shipped"
    elif bundle == lite_bundle_dir().resolve():
        kind = "lite"
    else:
        kind = "tiny test model"
    flt = bundle / FLOAT_FILE
    return ModelChoice(bundle, kind, flt if flt.is_file() else None)


def lite_from_args(lite_dir: Path | None) -> ModelChoice | None:
    return model_from_dir(lite_dir) if lite_dir is not None else None
