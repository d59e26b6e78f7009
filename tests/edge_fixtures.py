"""Model fixtures shared by edge, daemon and bench tests (registered from tests/conftest.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from edge.bundle import default_bundle_dir
from tests.support.tiny_model import build_tiny_bundle


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real int8 TFLite bundle (untrained, 10 GTZAN labels) plus ``model_float.tflite``; built once."""
    return build_tiny_bundle(tmp_path_factory.mktemp("tiny-bundle"))


@pytest.fixture
def bundle_copy(tiny_bundle: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny bundle that a test may corrupt."""
    dest = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, dest)
    return dest


@pytest.fixture(scope="session")
def shipped_bundle() -> Path:
    """The default model committed in the package; its absence is a failure, not a skip."""
    path = default_bundle_dir()
    assert (path / "model.tflite").is_file(), f"shipped model missing at {path}"
    return path
