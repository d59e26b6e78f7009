"""Typed errors with the exit codes the CLIs return (sysexits.h, as DESIGN.md asks).

A traceback means a bug: every expected failure is one of these, carrying one clear line.
"""

from __future__ import annotations

EX_USAGE = 2  # argparse's own code for bad usage
EX_DATAERR = 65
EX_NOINPUT = 66
EX_UNAVAILABLE = 69
EX_SOFTWARE = 70
EX_CONFIG = 78


class GenreError(Exception):
    """Base of every expected failure; ``exit_code`` is what a CLI exits with."""

    exit_code: int = EX_SOFTWARE


class UsageError(GenreError):
    """The user named something that does not exist or cannot be used as asked."""

    exit_code = EX_USAGE


class AudioDecodeError(GenreError):
    """An audio file or buffer that cannot be decoded or is unusable (empty, too short, NaN)."""

    exit_code = EX_DATAERR


class SpecError(GenreError):
    """A FeatureSpec that is inconsistent, incomplete or from a newer version."""

    exit_code = EX_DATAERR


class ModelBundleError(GenreError):
    """A model bundle (model.tflite + model.json) that is missing, corrupt or inconsistent."""

    exit_code = EX_DATAERR
