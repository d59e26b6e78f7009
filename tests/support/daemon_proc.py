"""How to start ``genre-daemon`` as its own process (tests and the bench run the same command)."""

from __future__ import annotations

import sys
from pathlib import Path

__all__ = ["daemon_command"]


def daemon_command() -> list[str]:
    """The installed console script next to this interpreter, else ``python -m daemon`` (same code)."""
    script = Path(sys.executable).with_name("genre-daemon")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "daemon"]
