#!/usr/bin/env bash
# The README's test command: install what the tests need on a fresh Debian/Python 3.11 machine, then run
# lint (ruff), types (mypy) and the whole pytest suite against real mosquitto, PulseAudio and audio.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/apt-install.sh \
    python3-venv python3-dev portaudio19-dev libsndfile1 mosquitto mosquitto-clients sox espeak-ng openssl \
    pulseaudio pulseaudio-utils libasound2-plugins alsa-utils systemd util-linux procps frozen-bubble-data \
    qemu-user-static debootstrap binfmt-support

PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# numpy<2: tflite-runtime 2.14 (the Pi's runtime on Python 3.11) fails at Interpreter() with numpy 2.
.venv/bin/python -m pip install -q -e ".[train,dev]" "numpy<2"
# A pinned Home Assistant core in its own Python >= 3.13 venv (cached under ~/.cache/genre-pi; minutes, once).
.venv/bin/python -m tests.support.ha_venv || echo "Home Assistant venv not built; its tests say why" >&2

echo "== ruff"
.venv/bin/ruff check .
echo "== mypy"
.venv/bin/mypy
echo "== import contract (pyproject.toml [tool.importlinter])"
.venv/bin/lint-imports
echo "== pytest"
# Missing services must fail, not skip, where the suite is meant to be complete.
export GENRE_PI_REQUIRE_SERVICES=1
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
    echo "pytest collected no tests: that is a failure, not a pass" >&2
    exit 1
fi
exit "$rc"
