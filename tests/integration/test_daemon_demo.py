"""scripts/demo.sh (the README's main command) end to end, without apt: its own broker, daemon, subscriber."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "scripts" / "demo.sh"

pytestmark = pytest.mark.skipif(
    shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists(), reason="mosquitto not installed"
)


def demo_env(tiny_bundle: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "NO_APT": "1", "VENV": str(Path(sys.executable).parent.parent), "MODEL": str(tiny_bundle),
            **extra}  # fmt: skip


def test_demo_prints_messages_and_exits_when_the_file_ends(tiny_bundle: Path, music_file: Path) -> None:
    # Paced at 10x and played once, not SPEED=0: the outbox sends only the newest state, so at full speed
    # how many states get printed is set by the machine's speed (and the first connect), not by the demo.
    proc = subprocess.run(
        ["bash", str(DEMO), str(music_file)], env=demo_env(tiny_bundle, SPEED="10", LOOP="0"),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    # The designed order: discovery may come first, then this run's first genre and state, and `online` only
    # after them (after the first settled decision): a retained genre of an earlier run never looks current.
    online = lines.index("genre/demo/availability online")
    first_ours = next(i for i, line in enumerate(lines) if line.startswith("genre/demo/"))
    assert all(line.startswith("homeassistant/sensor/demo/") for line in lines[:first_ours]), lines[: first_ours + 1]
    assert any(line.startswith("genre/demo/genre ") for line in lines[:online]), lines[: online + 1]
    assert any(line.startswith("genre/demo/state {") for line in lines[:online]), lines[: online + 1]
    assert any(line.startswith("homeassistant/sensor/demo/genre/config {") for line in lines)
    # 30 s clip, 3 s window, 1 s hop: 28 windows, the last one printed; at 10x (10 states a second) the
    # stream shows, not just a final state, even when the first connect merged the first few.
    states = [json.loads(line.split(" ", 1)[1]) for line in lines if line.startswith("genre/demo/state {")]
    windows = [state["counters"]["windows"] for state in states]
    assert windows[-1] == 28 and len(windows) >= 20, windows
    assert lines[-1] == "genre/demo/availability offline"


def test_demo_ctrl_c_stops_everything_it_started(tiny_bundle: Path, music_file: Path) -> None:
    proc = subprocess.Popen(
        ["bash", str(DEMO), str(music_file)], env=demo_env(tiny_bundle, SPEED="5"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        # A terminal's shell has SIGINT at its default; a test runner started in the background (`cmd &` in a
        # script, as CI rehearsals were) passes it on ignored, and bash cannot trap a signal ignored at entry.
        preexec_fn=_default_sigint,
    )  # fmt: skip
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    for line in proc.stdout:
        if line.startswith("genre/demo/state"):
            break
        assert time.monotonic() < deadline
    children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
    assert len(children) >= 3, children  # broker, subscriber, daemon
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    out, err = proc.communicate(timeout=10)
    assert "genre/demo/availability offline" in out, err
    assert "[demo]" in err and "stopped" in err
    # The demo has stopped them (SIGKILL after 2 s at worst) before it exits; what is left is the kernel
    # tearing them down and init reaping them, which takes longer than any fixed pause on a loaded machine.
    deadline = time.monotonic() + 10
    while (alive := [pid for pid in children if _running(pid)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive, f"left running: {alive}"


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _running(pid: str) -> bool:
    """True while ``pid`` exists and has not exited (a zombie has: only its parent's reaping is left)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


FROZEN = Path("/usr/share/games/frozen-bubble/snd/frozen-mainzik-1p.ogg")


@pytest.mark.skipif(not FROZEN.is_file(), reason=f"{FROZEN} missing: apt-get install frozen-bubble-data")
def test_demo_default_music_is_frozen_bubble(tiny_bundle: Path) -> None:
    proc = subprocess.run(
        ["bash", str(DEMO)], env=demo_env(tiny_bundle, SPEED="0"), capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert str(FROZEN) in proc.stderr
    assert proc.stdout.splitlines()[-1] == "genre/demo/availability offline"
