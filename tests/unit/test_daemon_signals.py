"""SIGTERM/SIGINT set the daemon's stop event from a watcher thread, never inside the signal handler.

Each case runs in a child interpreter (signal handlers and the wakeup fd belong to a process's main thread)
that signals itself while its main thread holds the stop event's lock, as ``Event.wait`` does around its
sleep in the file source's pacing. Setting the event from the handler deadlocked right there.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import pytest

CHILD = textwrap.dedent(
    """
    import logging, os, signal, sys, threading
    from daemon.signals import stop_on_signals

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    stop = threading.Event()
    armed = []
    stop_on_signals(stop, lambda: armed.append(stop.is_set()))
    with stop._cond:  # what Event.wait holds for a few bytecodes around its sleep
        os.kill(os.getpid(), int(sys.argv[1]))
        spins = sum(range(100_000))  # bytecodes: Python runs its handler here, with the lock still held
    print("stopped" if stop.wait(10) else "not stopped", armed, flush=True)
    """
)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_inside_the_events_lock_stops_without_deadlock(sig: signal.Signals) -> None:
    try:
        proc = subprocess.run([sys.executable, "-c", CHILD, str(int(sig))], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"{sig.name} while the stop event's lock was held: deadlock") from exc
    assert proc.returncode == 0, proc.stderr
    # The stuck-stop timer's hook ran once, before the event was set (so it bounds the whole stop).
    assert proc.stdout.strip() == "stopped [False]", proc.stdout + proc.stderr
    assert f"{sig.name}: stopping" in proc.stderr


def test_a_second_signal_is_logged_and_does_not_rearm() -> None:
    child = CHILD.replace(
        'print("stopped"', 'os.kill(os.getpid(), signal.SIGTERM); import time; time.sleep(0.5)\nprint("stopped"'
    )
    proc = subprocess.run([sys.executable, "-c", child, str(int(signal.SIGTERM))], capture_output=True, text=True,
                          timeout=30)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "stopped [False]", proc.stdout + proc.stderr
    assert proc.stderr.count("SIGTERM: stopping") == 2, proc.stderr
