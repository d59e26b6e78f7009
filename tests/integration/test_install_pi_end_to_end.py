"""scripts/install-pi.sh end to end on this x86-64 box, into a scratch root (GENRE_PI_ROOT).

The real script, apt check, venv, pip install of the edge extra, config, password, unit and the
daemon's --check-config; then a second run, --password-file, --upgrade, --uninstall and --purge.
systemd is not PID 1 here (and never touched under GENRE_PI_ROOT), so the service is not started:
the arm64 chroot run (test_pi_check.py) covers the same script on the Pi's userland.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
INSTALLER = REPO / "scripts" / "install-pi.sh"


def _run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GENRE_PI_ROOT": str(root)}
    proc = subprocess.run(
        ["bash", str(INSTALLER), *args], env=env, capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL
    )
    print(f"$ install-pi.sh {' '.join(args)} -> {proc.returncode}\n{proc.stdout[-1500:]}{proc.stderr[-1500:]}")
    return proc


@pytest.mark.slow
@pytest.mark.timeout(1200)
@pytest.mark.skipif(os.geteuid() != 0, reason="the installer requires root")
def test_install_rerun_password_upgrade_uninstall_purge(tmp_path: Path) -> None:
    root = tmp_path / "root"
    venv = root / "opt" / "genre-pi" / ".venv"
    etc = root / "etc" / "genre-daemon"
    unit = root / "etc" / "systemd" / "system" / "genre-daemon.service"

    first = _run(root, "--mqtt-host", "broker.lan", "--mqtt-port", "8883", "--device-id", "kitchen", "--mic", "USB")
    assert first.returncode == 0
    assert "not started" in first.stdout and "config OK" in first.stdout
    config = tomllib.loads((etc / "config.toml").read_text())
    assert config["mqtt"]["host"] == "broker.lan" and config["mqtt"]["port"] == 8883
    assert config["mqtt"]["device_id"] == "kitchen" and config["source"]["device"] == "USB"
    password = etc / "mqtt_password"
    assert password.read_text() == "" and stat.S_IMODE(password.stat().st_mode) == 0o600
    text = unit.read_text()
    assert f"ExecStart={venv}/bin/genre-daemon --config {etc}/config.toml" in text
    assert f"LoadCredential=mqtt_password:{password}" in text
    # The edge extra only: a TFLite runtime, never tensorflow.
    freeze = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "freeze"], capture_output=True, text=True)
    assert "tflite-runtime" in freeze.stdout or "ai-edge-litert" in freeze.stdout
    assert "tensorflow" not in freeze.stdout.replace("tflite", "")

    if shutil.which("systemd-analyze"):
        verify = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
        # It exits 0 on warnings: read what it says about our unit.
        ours = [line for line in verify.stderr.splitlines() if "genre-daemon" in line]
        assert verify.returncode == 0 and not ours, verify.stderr

    before = {p: p.stat().st_mtime_ns for p in (etc / "config.toml", password, unit)}
    again = _run(root)
    assert again.returncode == 0
    assert "installing" not in again.stdout and "installed /" not in again.stdout
    assert "config" in again.stdout and "unchanged" in again.stdout
    assert {p: p.stat().st_mtime_ns for p in before} == before

    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    with_password = _run(root, "--username", "pi", "--password-file", str(secret))
    assert with_password.returncode == 0
    assert password.read_text() == "s3cret\n" and stat.S_IMODE(password.stat().st_mode) == 0o600
    assert "user=pi password=set" in with_password.stdout
    assert "s3cret" not in with_password.stdout + with_password.stderr

    upgrade = _run(root, "--upgrade")
    assert upgrade.returncode == 0 and "upgrading" in upgrade.stdout
    assert tomllib.loads((etc / "config.toml").read_text())["mqtt"]["username"] == "pi"
    assert password.read_text() == "s3cret\n"

    uninstall = _run(root, "--uninstall")
    assert uninstall.returncode == 0
    assert not venv.exists() and not unit.exists() and not (root / "opt" / "genre-pi").exists()
    assert (etc / "config.toml").exists() and password.exists()

    purge = _run(root, "--purge")
    assert purge.returncode == 0
    leftovers = sorted(str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir())
    assert leftovers == [], leftovers
