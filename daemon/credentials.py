"""Reading the MQTT password: from ``password_file`` or systemd's ``$CREDENTIALS_DIRECTORY``.

Kept apart from settings parsing because it is the one place that touches a secret: the value is
returned, never logged, and errors name the file, not its content.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

CREDENTIAL_NAME = "mqtt_password"  # systemd: LoadCredential=mqtt_password:/etc/genre-daemon/mqtt_password


class CredentialError(Exception):
    """A problem with the setting ``key`` (dotted, e.g. ``mqtt.password_file``)."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(problem)
        self.key = key
        self.problem = problem


def file_problem(value: str) -> str | None:
    """Why ``value`` is not a readable regular file, or None if it is."""
    p = Path(value)
    if not p.exists():
        return f"{value}: no such file"
    if not p.is_file():
        return f"{value}: not a regular file"
    if not os.access(p, os.R_OK):
        return f"{value}: not readable"
    return None


def read_password(password_file: str, env: Mapping[str, str]) -> str:
    """The password from ``password_file``, else ``$CREDENTIALS_DIRECTORY/mqtt_password``, else ''."""
    key = "mqtt.password_file"
    if password_file:
        problem = file_problem(password_file)
        if problem:
            raise CredentialError(key, problem)
        path = Path(password_file)
    else:
        cred_dir = env.get("CREDENTIALS_DIRECTORY")
        if not cred_dir or not (Path(cred_dir) / CREDENTIAL_NAME).is_file():
            return ""
        path = Path(cred_dir) / CREDENTIAL_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CredentialError(key, f"{path}: cannot read ({type(exc).__name__})") from None
    # Editors and `echo` add a final newline that is never part of the password.
    password = text.rstrip("\r\n")
    if not password and password_file:
        raise CredentialError(key, f"{path}: is empty")
    # An empty credential is the unit's SetCredential= default: "no password", not an error.
    return password
