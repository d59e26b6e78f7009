"""One hash of the code that shapes cached features, so features made by other code are never reused.

The key covers every ``.py`` file of the packages whose code shapes the frames — ``trainer.data``
(decoding jobs, the cache itself, the reject-class clips) and ``trainer.augment`` (the room chain) —
and edge's decode/MFCC/spec modules, each by its path relative to the package's parent and its
content, in sorted order. Renaming, moving, adding or editing such a file changes the key; a named
edge module that has moved away raises instead of silently dropping out of the key.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import edge
import trainer

FEATURE_PACKAGES = ("data", "augment")  # under trainer/
EDGE_FEATURE_MODULES = ("audio.py", "features.py", "melbank.py", "spec.py")  # under edge/


def feature_sources(trainer_dir: Path | None = None, edge_dir: Path | None = None) -> list[tuple[str, Path]]:
    """(relative path such as ``trainer/data/dataset.py``, file) of every feature source, sorted.

    The directories default to the imported packages'.
    """
    trainer_dir = trainer_dir or Path(trainer.__file__).resolve().parent
    edge_dir = edge_dir or Path(edge.__file__).resolve().parent
    files = [(trainer_dir, p) for pkg in FEATURE_PACKAGES for p in (trainer_dir / pkg).rglob("*.py")]
    files += [(edge_dir, edge_dir / name) for name in EDGE_FEATURE_MODULES]
    missing = [str(p) for _, p in files if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"feature code moved; update trainer.data.code_tag: {', '.join(missing)}")
    return sorted((p.relative_to(top.parent).as_posix(), p) for top, p in files)


def code_tag(sources: list[tuple[str, Path]]) -> str:
    """12 hex digits over the relative paths and contents of ``sources``, in their order."""
    digest = hashlib.sha256()
    for rel, path in sources:
        digest.update(rel.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


@functools.cache
def feature_code_tag() -> str:
    """The tag of the imported feature code (computed once per process)."""
    return code_tag(feature_sources())
