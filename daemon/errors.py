"""Daemon errors and exit codes; the expected failures reuse edge's typed errors (sysexits.h).

``ConfigError`` (78, EX_CONFIG) carries the file and key so the one-line message can name them;
systemd's ``RestartPreventExitStatus=78`` then stops a restart loop on a config that will never work.
"""

from __future__ import annotations

from edge.errors import EX_CONFIG, EX_UNAVAILABLE, GenreError

__all__ = ["ConfigError", "SourceUnavailable"]


class ConfigError(GenreError):
    """A configuration problem: unknown key, wrong type, bad value or a missing file it names."""

    exit_code = EX_CONFIG

    def __init__(self, problem: str, *, file: str | None = None, key: str | None = None) -> None:
        self.file = file
        self.key = key
        self.problem = problem
        where = ": ".join(part for part in (file, key) if part)
        super().__init__(f"{where}: {problem}" if where else problem)


class SourceUnavailable(GenreError):
    """The audio source cannot be opened (no such device, device busy); systemd may retry later."""

    exit_code = EX_UNAVAILABLE
