"""Seeds that depend only on a clip's content and what is made of it, never on run order."""

from __future__ import annotations

import hashlib


def variant_seed(sha256: str, *parts: int | str) -> int:
    """A stable 63-bit seed from the clip's content hash and the variant, independent of run order."""
    text = "/".join([sha256, *map(str, parts)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1
