"""A pinned Home Assistant core in its own cached venv (Python >= 3.13), built once and reused.

Home Assistant needs a newer Python than the project's and pins its own paho-mqtt, so it never
shares the project's venv. The venv lives at ``~/.cache/genre-pi/ha-<version>`` (override the folder
with ``$GENRE_PI_HA_VENV``), keyed by version; a stamp file marks a finished install, so an
interrupted one is redone, and parallel test processes serialise on ``<venv>.lock``. Besides the
core it installs the requirements of the integrations the tests load (read from their manifests), so
Home Assistant starts with ``--skip-pip`` and never installs anything while a test waits.

``scripts/test.sh`` builds it before the suite (``python -m tests.support.ha_venv``) so a fresh
machine pays the minutes there, not inside a test's timeout.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "HA_VERSION", "INSTALL_TIMEOUT_S", "INTEGRATIONS", "HaUnavailable", "ensure_ha_venv", "find_python", "venv_path",
]  # fmt: skip

# 2025.4.4 is the newest release that runs on Python 3.13.0: 2025.5 and later need >= 3.13.2, 2026.3 and
# later >= 3.14.2 (pip says so in its "Requires-Python" lines).
HA_VERSION = "2025.4.4"
MIN_PYTHON = (3, 13)
# The integrations the tests load (frontend too: without it Home Assistant starts in recovery mode);
# their manifest requirements are pre-installed.
INTEGRATIONS = (
    "api", "automation", "blueprint", "config", "frontend", "http", "input_number", "mqtt", "recorder", "script",
    "sensor",
)  # fmt: skip
INSTALL_TIMEOUT_S = 30 * 60.0
_STAMP = ".genre-pi-install-complete"


class HaUnavailable(RuntimeError):
    """No suitable Python, or the install failed: the tests skip (or fail when services are required)."""


def _version_of(python: str) -> tuple[int, int] | None:
    try:
        out = subprocess.run(
            [python, "-c", "import sys; print(sys.version_info[0], sys.version_info[1])"],
            capture_output=True, text=True, timeout=20, check=True,
        ).stdout.split()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return (int(out[0]), int(out[1])) if len(out) == 2 else None


def find_python() -> str | None:
    """``$GENRE_PI_HA_PYTHON``, else a ``python3.13``/``python3.14`` on PATH or under pyenv; None if none."""
    candidates = [os.environ.get("GENRE_PI_HA_PYTHON", "")]
    candidates += [shutil.which(name) or "" for name in ("python3.13", "python3.14")]
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates += [str(p) for p in sorted(pyenv.glob("3.1[34]*/bin/python3"))]
    for python in filter(None, candidates):
        version = _version_of(python)
        if version is not None and version >= MIN_PYTHON:
            return python
    return None


def venv_path(version: str = HA_VERSION) -> Path:
    override = os.environ.get("GENRE_PI_HA_VENV")
    if override:
        return Path(override)
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "genre-pi" / f"ha-{version}"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        deadline = time.monotonic() + INSTALL_TIMEOUT_S + 60
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise HaUnavailable(f"timed out waiting for another Home Assistant install ({path})") from None
                time.sleep(1.0)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _pip(venv: Path, *args: str) -> None:
    proc = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check", *args],
        capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S,
    )  # fmt: skip
    if proc.returncode != 0:
        lines = [line for line in (proc.stderr or proc.stdout).splitlines() if "is ignored" not in line]
        tail = "\n".join(line[:300] for line in lines[-10:])  # pip's "versions" lines run to kilobytes
        raise HaUnavailable(f"pip install {' '.join(args)} failed in {venv}:\n{tail}")


def _integration_requirements(venv: Path) -> list[str]:
    script = (
        "import json, pathlib, sys, homeassistant.components as c\n"
        "root = pathlib.Path(c.__file__).parent\n"
        "print(json.dumps(sorted({r for name in sys.argv[1:] "
        "for r in json.loads((root / name / 'manifest.json').read_text()).get('requirements', [])})))\n"
    )
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-c", script, *INTEGRATIONS], capture_output=True, text=True, timeout=60
    )
    if out.returncode != 0:
        raise HaUnavailable(f"cannot read the integrations' manifests: {out.stderr.strip()[-500:]}")
    requirements: list[str] = json.loads(out.stdout)
    return requirements


def ensure_ha_venv(version: str = HA_VERSION) -> Path:
    """The venv with ``homeassistant==version`` installed (building it the first time); its ``hass`` runs it."""
    venv = venv_path(version)
    if (venv / _STAMP).is_file():
        return venv
    python = find_python()
    if python is None:
        raise HaUnavailable(
            f"Home Assistant {version} needs Python >= {MIN_PYTHON[0]}.{MIN_PYTHON[1]}, and none was found "
            "(set GENRE_PI_HA_PYTHON, or install python3.13)"
        )
    with _locked(venv.with_name(venv.name + ".lock")):
        if (venv / _STAMP).is_file():  # a sibling process finished it while we waited
            return venv
        if not (venv / "bin" / "python").exists():
            made = subprocess.run([python, "-m", "venv", str(venv)], capture_output=True, text=True, timeout=300)
            if made.returncode != 0:
                raise HaUnavailable(f"{python} -m venv {venv} failed: {made.stderr.strip()[-500:]}")
        # The wheel carries the release's package_constraints.txt, the pins it was tested with; without
        # them pip backtracks through dozens of source builds of unpinned transitive dependencies.
        _pip(venv, "--no-deps", f"homeassistant=={version}")
        constraints = next(venv.glob("lib/python3.*/site-packages/homeassistant/package_constraints.txt"), None)
        if constraints is None:
            raise HaUnavailable(f"homeassistant=={version} has no package_constraints.txt")
        _pip(venv, "-c", str(constraints), f"homeassistant=={version}")
        _pip(venv, "-c", str(constraints), *_integration_requirements(venv))
        (venv / _STAMP).write_text(f"homeassistant=={version}\n")
    return venv


if __name__ == "__main__":
    try:
        print(ensure_ha_venv())
    except HaUnavailable as exc:
        # Not fatal for scripts/test.sh: the Home Assistant tests then say why (skip, or fail when required).
        print(f"Home Assistant venv not built: {exc}", file=sys.stderr)
