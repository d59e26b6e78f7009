"""Wait for something that happened, not for a time: tests must pass on a fast idle machine and a loaded one.

A ``time.sleep(3)`` before reading a log assumes the process got there in 3 s (false on a loaded
machine) and then says nothing about what happened after (weak on a fast one). Example::

    wait_until(lambda: "refused" in d.log(), timeout=20, what="the daemon's first refusal", log=d.log)
    first = wait_until(lambda: lines_with(b.log_text(), "not authorised")[:1], timeout=20, what="an attempt")
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["lines_with", "wait_until"]

T = TypeVar("T")


def wait_until(
    check: Callable[[], T],
    timeout: float,
    what: str,
    *,
    poll_s: float = 0.05,
    log: Callable[[], str] | None = None,
) -> T:
    """Poll ``check`` until it returns something truthy and return that; AssertionError after ``timeout`` s.

    ``what`` names the awaited event in the error; ``log`` (e.g. ``d.log``) is appended to it.
    """
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() >= deadline:
            detail = f"; log:\n{log()}" if log is not None else ""
            raise AssertionError(f"{what}: not within {timeout:g} s{detail}")
        time.sleep(poll_s)


def lines_with(text: str, needle: str) -> list[str]:
    """The lines of ``text`` containing ``needle``."""
    return [line for line in text.splitlines() if needle in line]
