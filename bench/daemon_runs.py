"""The daemon section's runs, one daemon process each: throughput at --speed 0, the file source and the microphone
(PulseAudio) at real-time pace, and the recorded arm64 parity. bench/daemon.py turns them into tables per bundle.
"""

from __future__ import annotations

import contextlib
import json
import math
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import soundfile as sf

from bench.common import REPO, gtzan_clips, music_like
from bench.harness import OpenWatch, Subscriber, mosquitto, spawn, wait_ready

__all__ = ["SR", "model_hash", "mosquitto", "music", "paced", "paced_mic", "pi_parity", "throughput"]

PI_CHECKS = sorted(Path(__file__).resolve().parent.glob("pi-check-*.json"))

SR = 22050  # the bench's music is decoded at this rate and written at whatever rate a run asks for
FloatArray = npt.NDArray[np.float32]
CHUNK_S = 0.1  # the daemon's default source.chunk_s


def music(seconds: float) -> FloatArray:
    clips = gtzan_clips(limit=int(seconds // 30) + 1)
    if not clips:
        return music_like(seconds, SR)
    from edge.audio import load_audio

    audio = np.concatenate([load_audio(p, SR) for p in clips])
    return audio[: int(seconds * SR)]


def write_wav(path: Path, audio: FloatArray, rate: int, samples: int | None = None) -> Path:
    """``audio`` (at SR) resampled to ``rate``, looped or cut to ``samples`` at that rate, as 16-bit PCM."""
    import soxr

    data = audio if rate == SR else soxr.resample(audio, SR, rate)
    sf.write(path, data if samples is None else np.resize(data, samples), rate, subtype="PCM_16")
    return path


def throughput(
    work: Path, port: int, model: Path, audio: FloatArray, rate: int, seconds: float, tag: str
) -> dict[str, Any]:
    """Real-time factor at --speed 0 on a looping WAV at ``rate`` Hz (the model's rate = no resampling)."""
    name = f"{tag}-rtf{rate}"
    path = write_wav(work / f"{name}.wav", audio, rate)
    sub = Subscriber(port, f"bench/{name}/#")
    run = spawn(work, port, model, f"file:{path}", name, ["--speed", "0", "--loop"])
    try:
        ready = wait_ready(run, work / f"daemon-{name}.log")
        time.sleep(1.0)  # first windows, JIT-less warm-up of the interpreter and MQTT connection
        ratios, speeds = [], []
        prev = (time.monotonic(), run.cpu_s(), sub.latest_stream_s())
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            time.sleep(1.0)
            now = (time.monotonic(), run.cpu_s(), sub.latest_stream_s())
            if prev[2] is not None and now[2] is not None and now[2] > prev[2]:
                ratios.append((now[1] - prev[1]) / (now[2] - prev[2]))
                speeds.append((now[2] - prev[2]) / (now[0] - prev[0]))
            prev = now
    finally:
        run.stop(work / f"daemon-{name}.log")
        sub.close()
    if not ratios:
        raise RuntimeError(f"no states with stream_s received; daemon log: {run.stderr}")
    return {
        "rtf": ratios,
        "speed": speeds,
        "ready_s": ready,
        "peak_rss_mb": run.peak_rss_mb,
        "steady_rss_mb": run.steady_rss_mb(),
        "exit": run.exit_code,
    }


def paced(
    work: Path, port: int, model: Path, audio: FloatArray, seconds: float, rate: int, tag: str, extra: list[str]
) -> dict[str, Any]:
    """``--speed 1`` on a regular WAV at the model's ``rate``: latency, CPU % and RSS at real-time pace.

    The file source releases the audio of chunk k (0.1 s) at t0 + k x 0.1 s, t0 being when it opened the
    file (up to a window end in one piece, once its last chunk is due); the bench sees that open through
    inotify, so a window ending at ``stream_s`` was released at t0 + the start of the chunk holding its last
    sample. The inotify wake-up can only come late, which shortens the measured latency by
    that much (sub-millisecond on an idle core).
    """
    warm = 5.0
    name = f"{tag}-paced"
    path = write_wav(work / f"{name}.wav", audio, rate, int((seconds + warm + 3) * rate))
    sub = Subscriber(port, f"bench/{name}/#")
    watch = OpenWatch(path)
    run = spawn(work, port, model, f"file:{path}", name, ["--speed", "1", *extra])
    try:
        ready = wait_ready(run, work / f"daemon-{name}.log")
        time.sleep(warm)  # the first window needs 3 s of audio; measure CPU from steady state on
        cpu0, t0 = run.cpu_s(), time.monotonic()
        time.sleep(seconds)
        cpu1, t1 = run.cpu_s(), time.monotonic()
        time.sleep(0.3)  # the last state in flight
    finally:
        run.stop(work / f"daemon-{name}.log")
        sub.close()
        watch.close()
    if watch.opened is None:
        raise RuntimeError(f"the daemon never opened {path}; log: {run.stderr}")
    open_mono, open_wall = watch.opened
    chunk = round(CHUNK_S * rate)  # the file source's block at the file's own rate (no resampling: same as model's)
    chunk_s = chunk / rate
    latency, processing, transport = [], [], []
    for t_mono, t_wall, doc in sub.states:
        s = doc.get("stream_s")
        if s is None:
            continue
        # The chunk holding the window's last sample was released at its start.
        entered = math.floor((float(s) * rate - 0.5) / chunk) * chunk_s
        latency.append((t_mono - open_mono - entered) * 1e3)
        with contextlib.suppress(KeyError, ValueError):
            from datetime import datetime

            stamped = datetime.fromisoformat(doc["time"].replace("Z", "+00:00")).timestamp()
            processing.append((stamped - open_wall - entered) * 1e3)
            transport.append((t_wall - stamped) * 1e3)
    if not latency:
        raise RuntimeError(f"no states received; daemon log: {run.stderr}")
    return {
        "latency_ms": latency,
        "processing_ms": processing,
        "transport_ms": transport,
        "cpu_pct": 100 * (cpu1 - cpu0) / (t1 - t0),
        "cpu_window_s": t1 - t0,
        "ready_s": ready,
        "peak_rss_mb": run.peak_rss_mb,
        "steady_rss_mb": run.steady_rss_mb(),
        "exit": run.exit_code,
        "windows": len(latency),
    }


def paced_mic(work: Path, port: int, model: Path, audio: FloatArray, seconds: float, tag: str) -> dict[str, Any]:
    """``--source mic`` through a private PulseAudio while music plays into its sink: CPU %, READY, RSS.

    The sink runs at 44.1 kHz, so the daemon resamples to the model's rate as it would on a USB microphone.
    """
    from tests.support.pulse import PulseServer, pulse_available

    missing = pulse_available()
    if missing:
        raise RuntimeError(missing)
    warm = 5.0
    name = f"{tag}-mic"
    path = write_wav(work / f"{name}.wav", audio, 44100, int((seconds + warm + 10) * 44100))
    server = PulseServer(work / f"pulse-{tag}").start()
    old = server.apply_env()
    player = server.play(path)
    try:
        run = spawn(work, port, model, "mic", name, ["--device", "pulse"])
        try:
            ready = wait_ready(run, work / f"daemon-{name}.log")
            time.sleep(warm)
            cpu0, t0 = run.cpu_s(), time.monotonic()
            time.sleep(seconds)
            cpu1, t1 = run.cpu_s(), time.monotonic()
        finally:
            run.stop(work / f"daemon-{name}.log")
    finally:
        player.kill()
        server.restore_env(old)
        server.stop()
    return {
        "cpu_pct": 100 * (cpu1 - cpu0) / (t1 - t0),
        "cpu_window_s": t1 - t0,
        "ready_s": ready,
        "peak_rss_mb": run.peak_rss_mb,
        "exit": run.exit_code,
    }


def _bundle_version_at(commit: str) -> str | None:
    """The shipped bundle's model version in ``commit`` (None outside git or for an unknown commit)."""
    try:
        proc = subprocess.run(
            ["git", "show", f"{commit}:edge/models/default/model.json"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return str(json.loads(proc.stdout)["model"]["version"]) if proc.returncode == 0 else None
    except (OSError, subprocess.SubprocessError, ValueError, KeyError, TypeError):
        return None


def model_hash(version: str) -> str:
    """The model bytes' hash in a bundle version ("build minute-hash")."""
    return version.rsplit("-", 1)[-1]


def pi_parity(shipped_version: str) -> tuple[float | None, str]:
    """The worst |Δp| of the committed Pi checks (bench/pi-check-SUITE.json) that ran the shipped model.

    A check recorded on another model says nothing about this one, so it is named but not counted. The model is
    its bytes: a re-ship that changes only model.json's rule or sensor constants keeps the arm64 |Δp|.
    """
    figures, skipped = [], []
    for path in PI_CHECKS:
        doc = json.loads(path.read_text())
        label = f"{path.stem.removeprefix('pi-check-')} {doc.get('when', '')}"
        version = _bundle_version_at(str(doc.get("commit", ""))) if doc.get("commit") else None
        if version is None or model_hash(version) != model_hash(shipped_version):
            skipped.append(f"{label} ran model {version or 'unknown'}")
        elif doc.get("max_delta_p") is None:
            skipped.append(f"{label}: no |Δp| recorded (ok={doc.get('ok')})")
        else:
            figures.append((float(doc["max_delta_p"]), label))
    text = "; ".join([*(f"{label}: {value:.4f}" for value, label in figures), *(f"not counted: {s}" for s in skipped)])
    if not figures:
        return None, text or "no bench/pi-check-*.json: run sudo bash scripts/pi-check.sh SUITE --record"
    return max(figures)[0], text
