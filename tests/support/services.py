"""A service a test needs is missing: skip, or fail where CI demands every service (``GENRE_PI_REQUIRE_SERVICES=1``)."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

__all__ = ["unavailable"]


def unavailable(reason: str) -> NoReturn:
    if os.environ.get("GENRE_PI_REQUIRE_SERVICES") == "1":
        pytest.fail(f"required service unavailable (GENRE_PI_REQUIRE_SERVICES=1): {reason}", pytrace=False)
    pytest.skip(reason)
