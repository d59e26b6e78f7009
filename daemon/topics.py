"""MQTT topic-level validation and the default device id; pure functions."""

from __future__ import annotations

import re
import socket


def topic_segment_problem(value: str) -> str | None:
    """Why ``value`` cannot be one MQTT topic level (prefix, device id), or None if it can."""
    if not value:
        return "must not be empty"
    bad = sorted({c for c in value if c in "+#/\0"})
    if bad:
        return f"must not contain {' '.join(repr(c) for c in bad)}"
    if value.startswith("$"):
        return "must not start with '$' (reserved for broker topics)"
    if value != value.strip():
        return "must not have leading or trailing spaces"
    return None


def topic_prefix_problem(value: str) -> str | None:
    """Like :func:`topic_segment_problem`, but ``a/b`` (several non-empty levels) is allowed."""
    if not value:
        return "must not be empty"
    for level in value.split("/"):
        problem = topic_segment_problem(level)
        if problem:
            return f"level {level!r} {problem}" if level else "must not have empty levels (leading, trailing or '//')"
    return None


def default_device_id() -> str:
    """The short hostname, with anything that is not [A-Za-z0-9_-] replaced by '_'."""
    name = socket.gethostname().split(".")[0]
    return re.sub(r"[^A-Za-z0-9_-]", "_", name) or "genre-pi"
