"""Set keys in genre-daemon's TOML config, keeping every comment and every other line as it is.

Used by scripts/install-pi.sh with the system's python3 (stdlib only, so it runs before the venv
exists). The config starts as a copy of systemd/config.example.toml, where every key is written
out in its section; a key a user deleted is added back at the end of its section.

    python3 set_config.py TEMPLATE TARGET [section.key=VALUE ...]

VALUE is stored as a TOML integer if it is all digits and the key is numeric (``mqtt.port``,
a device index), else as a TOML string. TARGET is written (atomically, mode 0644: the daemon's
DynamicUser reads it) only if its content changes; prints ``created``, ``changed`` or ``unchanged``.
Exit 78 with one line if a key is unknown or the result is not valid TOML.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import tomllib
from pathlib import Path

# Keys the installer may set, and whether an all-digit value is an integer there.
KEYS = {
    "mqtt.host": False,
    "mqtt.port": True,
    "mqtt.device_id": False,
    "mqtt.username": False,
    "source.device": True,  # "USB" (a name substring) or 2 (a PortAudio index)
    "source.kind": False,
}


def toml_value(key: str, value: str) -> str:
    if KEYS[key] and value.isdigit():
        return str(int(value))
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def set_key(text: str, key: str, value: str) -> str:
    section, name = key.split(".", 1)
    lines = text.splitlines(keepends=True)
    current = ""
    section_end: int | None = None
    pattern = re.compile(rf"^\s*{re.escape(name)}\s*=")
    for i, line in enumerate(lines):
        header = re.match(r"^\s*\[([^\]]+)\]\s*(#.*)?$", line)
        if header:
            if current == section:
                section_end = i
            current = header.group(1).strip()
            continue
        if current == section and pattern.match(line):
            lines[i] = f"{name} = {toml_value(key, value)}\n"
            return "".join(lines)
    new = f"{name} = {toml_value(key, value)}\n"
    if current == section:
        section_end = len(lines)
    if section_end is None:  # no such section at all
        sep = "" if not lines or lines[-1].endswith("\n") else "\n"
        return "".join(lines) + f"{sep}\n[{section}]\n{new}"
    # Before the blank lines that close the section, so the key stays with its neighbours.
    while section_end > 0 and not lines[section_end - 1].strip():
        section_end -= 1
    lines.insert(section_end, new)
    return "".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: set_config.py TEMPLATE TARGET [section.key=VALUE ...]", file=sys.stderr)
        return 2
    template, target = Path(argv[0]), Path(argv[1])
    existed = target.exists()
    old = target.read_text(encoding="utf-8") if existed else template.read_text(encoding="utf-8")
    text = old
    for item in argv[2:]:
        key, sep, value = item.partition("=")
        if not sep or key not in KEYS:
            print(f"set_config: cannot set {item!r}: known keys are {', '.join(KEYS)}", file=sys.stderr)
            return 78
        text = set_key(text, key, value)
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        print(f"set_config: {target}: not valid TOML after the change ({exc})", file=sys.stderr)
        return 78
    if existed and text == old:
        print("unchanged")
        return 0
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".config.", suffix=".toml")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, target)
    print("changed" if existed else "created")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
