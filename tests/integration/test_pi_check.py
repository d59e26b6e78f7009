"""The Pi install on the Pi's own userland: scripts/pi-check.sh bookworm in an emulated arm64 chroot.

Runs the real script (debootstrap base cached in ~/.cache/genre-pi/pi-check, the installer inside,
genre-predict arm64 vs x86, the daemon against a mosquitto on the host, --purge) on this working
tree. Cold it takes ~8-10 min on an idle 2-core box (apt and pip under qemu), warm a few minutes less.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.services import unavailable

REPO = Path(__file__).resolve().parents[2]
GTZAN = REPO.parent / "shared" / "gtzan"


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root (debootstrap, chroot, mounts)"
    for tool, package in (
        ("debootstrap", "debootstrap"),
        ("qemu-aarch64-static", "qemu-user-static"),
        ("update-binfmts", "binfmt-support"),
        ("mosquitto", "mosquitto"),
        ("mosquitto_sub", "mosquitto-clients"),
    ):
        if shutil.which(tool) is None:
            return f"{tool} not installed: apt-get install {package}"
    binfmt = Path("/proc/sys/fs/binfmt_misc")
    if not (binfmt / "status").exists():
        probe = subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(binfmt)], capture_output=True)
        if probe.returncode != 0:
            return f"binfmt_misc cannot be mounted here: {probe.stderr.decode().strip()}"
    if not (binfmt / "qemu-aarch64").exists():
        subprocess.run(["update-binfmts", "--enable", "qemu-aarch64"], capture_output=True)
    if not (binfmt / "qemu-aarch64").exists():
        return "binfmt_misc has no qemu-aarch64 entry (qemu-user-static registers it)"
    if not (REPO / ".venv" / "bin" / "genre-predict").exists():
        return "no .venv for the x86 side: run bash scripts/test.sh"
    if not GTZAN.is_dir():
        return f"GTZAN copy missing: {GTZAN}"
    return None


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_pi_check_bookworm_arm64(tmp_path: Path) -> None:
    reason = _missing()
    if reason:
        unavailable(f"arm64 Pi check: {reason}")
    env = {**os.environ, "GENRE_PI_CHECK_WORK": str(tmp_path / "bookworm")}
    proc = subprocess.run(
        ["bash", str(REPO / "scripts" / "pi-check.sh"), "bookworm", "--worktree"],
        env=env,
        capture_output=True,
        text=True,
        timeout=1750,
    )
    print(proc.stdout[-4000:])
    result_path = tmp_path / "bookworm" / "result.json"
    assert result_path.exists(), proc.stdout[-3000:] + proc.stderr[-2000:]
    result = json.loads(result_path.read_text())
    print({k: result.get(k) for k in ("t_total_s", "t_install_s", "max_delta_p", "python", "runtime", "leftovers")})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert result["predict_clips"] == 3 and result["verdicts_equal"] == 3
    assert result["max_delta_p"] <= 0.05
    assert result["daemon_exit"] == 0 and result["daemon_ok"] and result["daemon_states"] > 0
    assert result["leftovers"] == "" and result["ok"] is True
