"""scripts/install-pi.sh: what it refuses and why, its config editor, and the unit it installs.

The refusals run the real script; only the facts it reads about the machine (``dpkg
--print-architecture``, the Python version) come from small stand-ins on PATH, because this x86 box
with Python 3.11 is neither 32-bit nor old. The full install runs in tests/integration/test_install_pi_end_to_end.py
(x86) and scripts/pi-check.sh (arm64).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
INSTALLER = REPO / "scripts" / "install-pi.sh"
UNIT = REPO / "systemd" / "genre-daemon.service"
EXAMPLE = REPO / "systemd" / "config.example.toml"
sys.path.insert(0, str(REPO / "scripts" / "pi"))
import set_config  # noqa: E402  (a script beside the installer, not a package)


def _run(
    root: Path, *args: str, env: dict[str, str] | None = None, user: str | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "GENRE_PI_ROOT": str(root), **(env or {})}
    cmd = ["bash", str(INSTALLER), *args]
    if user:
        cmd = ["setpriv", f"--reuid={user}", "--regid=nogroup", "--clear-groups", *cmd]
    return subprocess.run(cmd, env=full_env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def _stand_in(bin_dir: Path, name: str, script: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)


def _assert_refused(proc: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for word in words:
        assert word in lines[0], lines[0]
    print(lines[0])


def _nothing_installed(root: Path) -> None:
    assert not root.exists() or not any(root.iterdir()), sorted(p for p in root.rglob("*"))


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run the installer's checks as another user")
def test_refuses_without_root(tmp_path: Path) -> None:
    proc = _run(tmp_path / "root", "--mqtt-host", "h", user="nobody")
    _assert_refused(proc, 77, "root", "sudo bash")
    _nothing_installed(tmp_path / "root")


@pytest.mark.skipif(os.geteuid() != 0, reason="the installer requires root")
@pytest.mark.parametrize("arch", ["armhf", "armel", "i386"])
def test_refuses_a_32_bit_os(tmp_path: Path, arch: str) -> None:
    # Raspberry Pi OS 32-bit often runs a 64-bit kernel (uname -m says aarch64): dpkg tells the truth.
    bin_dir = tmp_path / "bin"
    _stand_in(bin_dir, "dpkg", f'[ "$1" = --print-architecture ] && echo {arch} && exit 0\nexec /usr/bin/dpkg "$@"\n')
    proc = _run(tmp_path / "root", env={"PATH": f"{bin_dir}:{os.environ['PATH']}"})
    _assert_refused(proc, 69, "32-bit", arch, "64-bit Raspberry Pi OS")
    _nothing_installed(tmp_path / "root")


@pytest.mark.skipif(os.geteuid() != 0, reason="the installer requires root")
def test_refuses_an_old_python(tmp_path: Path) -> None:
    # Bullseye's python3 is 3.9: answer the installer's two questions the way it would.
    bin_dir = tmp_path / "bin"
    _stand_in(
        bin_dir,
        "python3.9",
        'case "$2" in *print*) echo 3.9 ;; *version_info*) exit 1 ;; *) exit 0 ;; esac\n',
    )
    proc = _run(tmp_path / "root", env={"PYTHON": str(bin_dir / "python3.9")})
    _assert_refused(proc, 69, "Python 3.9", "3.11 or newer", "upgrade the OS")
    _nothing_installed(tmp_path / "root")


@pytest.mark.skipif(os.geteuid() != 0, reason="the installer requires root")
@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--mqtt-port", "http"], ["--mqtt-port http", "not a port"]),
        (["--mqtt-host"], ["--mqtt-host needs a value"]),
        (["--frobnicate"], ["unknown argument --frobnicate"]),
    ],
)
def test_usage_errors_are_one_line_exit_2(tmp_path: Path, args: list[str], words: list[str]) -> None:
    _assert_refused(_run(tmp_path / "root", *args), 2, *words)
    _nothing_installed(tmp_path / "root")


def test_unit_never_hides_proc_cpuinfo() -> None:
    # ai-edge-litert reads /proc/cpuinfo at model load and crashes on an empty one (seen under qemu).
    settings = [
        line.split("=", 1) for line in UNIT.read_text().splitlines() if "=" in line and not line.startswith("#")
    ]
    keys = {k.strip(): v.strip() for k, v in settings}
    assert keys.get("ProcSubset", "all") == "all", "ProcSubset=pid hides /proc/cpuinfo"
    for key in ("InaccessiblePaths", "TemporaryFileSystem", "BindPaths", "BindReadOnlyPaths"):
        assert "/proc" not in keys.get(key, ""), f"{key}= touches /proc"
    # ProtectProc=invisible hides other users' processes only; /proc/cpuinfo stays.
    assert keys.get("ProtectProc") in (None, "invisible", "noaccess", "ptraceable", "default")


def test_set_config_sets_keys_keeps_comments_and_is_idempotent(tmp_path: Path) -> None:
    target = tmp_path / "etc" / "config.toml"
    args = ["mqtt.host=broker.lan", "mqtt.port=8883", "mqtt.device_id=kitchen", "source.device=USB", "mqtt.username=pi"]
    assert set_config.main([str(EXAMPLE), str(target), *args]) == 0
    text = target.read_text()
    config = tomllib.loads(text)
    assert config["mqtt"]["host"] == "broker.lan"
    assert config["mqtt"]["port"] == 8883
    assert config["mqtt"]["device_id"] == "kitchen"
    assert config["mqtt"]["username"] == "pi"
    assert config["source"]["device"] == "USB"
    # Everything else is the example, comments included.
    changed = {"host", "port", "device_id", "device", "username"}
    for old, new in zip(EXAMPLE.read_text().splitlines(), text.splitlines(), strict=True):
        if old != new:
            assert old.split("=")[0].strip() in changed, (old, new)
    assert oct(target.stat().st_mode & 0o777) == "0o644"  # the service's DynamicUser reads it
    mtime = target.stat().st_mtime_ns
    assert set_config.main([str(EXAMPLE), str(target), *args]) == 0
    assert target.stat().st_mtime_ns == mtime  # unchanged: not rewritten


def test_set_config_device_index_and_a_deleted_key(tmp_path: Path) -> None:
    target = tmp_path / "config.toml"
    target.write_text('# mine\n[mqtt]\nport = 1884\n\n[log]\nlevel = "debug"\n')
    assert set_config.main([str(EXAMPLE), str(target), "source.device=2", "mqtt.host=10.0.0.2"]) == 0
    config = tomllib.loads(target.read_text())
    assert config == {"mqtt": {"port": 1884, "host": "10.0.0.2"}, "log": {"level": "debug"}, "source": {"device": 2}}
    assert target.read_text().startswith("# mine\n")


def test_set_config_rejects_unknown_keys_and_quotes_strings(tmp_path: Path) -> None:
    target = tmp_path / "config.toml"
    assert set_config.main([str(EXAMPLE), str(target), "mqtt.password=x"]) == 78
    assert not target.exists()
    assert set_config.main([str(EXAMPLE), str(target), 'mqtt.device_id=a"b\\c']) == 0
    assert tomllib.loads(target.read_text())["mqtt"]["device_id"] == 'a"b\\c'
    assert re.search(r"^port = 1883$", target.read_text(), re.M)  # an untouched numeric key stays numeric
