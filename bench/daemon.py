"""Section 3: the real ``genre-daemon`` (its CLI, in its own process) publishing to a real local mosquitto.

* Throughput: a looping WAV at ``--speed 0``; real-time factor = daemon CPU seconds / audio seconds, from
  psutil CPU times and the ``stream_s`` of the states a subscriber receives, per 1 s interval after warm-up.
* Real-time pace: ``--speed 1`` on a WAV; the file source releases 0.1 s chunks into the ring buffer at
  t0 + k x 0.1 s, t0 being when it opened the file, which the bench sees through inotify. Latency = arrival
  of the state whose ``stream_s`` ends with chunk k minus that release time; CPU % = CPU s / wall s.
  (A FIFO fed by the bench would time ring entry directly, but the daemon accepts only regular files.)
* Microphone at real-time pace: ``--source mic --device pulse`` through a private PulseAudio (tests/support/pulse.py)
  with music played into its null sink; CPU % over the same span as the file run, all threads.
* READY: time from spawning the process to READY=1 on a NOTIFY_SOCKET the bench binds.
* arm64: the largest |Δp| between arm64 (emulated, scripts/pi-check.sh) and x86, read from bench/pi-check-*.json.
* RSS: psutil every 0.25 s (steady = median of the second half) and ru_maxrss at exit (peak).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import soundfile as sf

from bench.common import Row, SectionResult, Table, Target, gtzan_clips, music_like, section_main
from bench.harness import OpenWatch, Subscriber, daemon_command, mosquitto, spawn, wait_ready
from bench.model import model_from_dir

PI_CHECKS = sorted(Path(__file__).resolve().parent.glob("pi-check-*.json"))

SR = 22050
FloatArray = npt.NDArray[np.float32]
CHUNK = 2205  # the daemon's default source.chunk_s (0.1 s) at 22050 Hz


def music(seconds: float) -> FloatArray:
    clips = gtzan_clips(limit=int(seconds // 30) + 1)
    if not clips:
        return music_like(seconds, SR)
    from edge.audio import load_audio

    audio = np.concatenate([load_audio(p, SR) for p in clips])
    return audio[: int(seconds * SR)]


def throughput(work: Path, port: int, model: Path, audio: FloatArray, rate: int, seconds: float) -> dict[str, Any]:
    """Real-time factor at --speed 0 on a looping WAV at ``rate`` Hz (22050 = no resampling)."""
    import soxr

    path = work / f"music-{rate}.wav"
    data = audio if rate == SR else soxr.resample(audio, SR, rate)
    sf.write(path, data, rate, subtype="PCM_16")
    name = f"rtf{rate}"
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


def paced(work: Path, port: int, model: Path, audio: FloatArray, seconds: float) -> dict[str, Any]:
    """``--speed 1`` on a regular WAV: latency, CPU % and RSS at real-time pace.

    The file source releases the audio of chunk k (0.1 s) at t0 + k x 0.1 s, t0 being when it opened the
    file (up to a window end in one piece, once its last chunk is due); the bench sees that open through
    inotify, so a window ending at ``stream_s`` was released at t0 + the start of the chunk holding its last
    sample. The inotify wake-up can only come late, which shortens the measured latency by
    that much (sub-millisecond on an idle core).
    """
    warm = 5.0
    path = work / "paced.wav"
    n = int((seconds + warm + 3) * SR)
    sf.write(path, np.resize(audio, n), SR, subtype="PCM_16")
    name = "paced"
    sub = Subscriber(port, f"bench/{name}/#")
    watch = OpenWatch(path)
    run = spawn(work, port, model, f"file:{path}", name, ["--speed", "1"])
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
    chunk_s = CHUNK / SR
    latency, processing, transport = [], [], []
    for t_mono, t_wall, doc in sub.states:
        s = doc.get("stream_s")
        if s is None:
            continue
        # The chunk holding the window's last sample was released at its start.
        entered = math.floor((float(s) * SR - 0.5) / CHUNK) * chunk_s
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


def paced_mic(work: Path, port: int, model: Path, audio: FloatArray, seconds: float) -> dict[str, Any]:
    """``--source mic`` through a private PulseAudio while music plays into its sink: CPU %, READY, RSS."""
    import soxr

    from tests.support.pulse import PulseServer, pulse_available

    missing = pulse_available()
    if missing:
        raise RuntimeError(missing)
    warm = 5.0
    path = work / "mic-music.wav"
    n = int((seconds + warm + 10) * SR)
    sf.write(path, soxr.resample(np.resize(audio, n), SR, 44100), 44100, subtype="PCM_16")
    server = PulseServer(work / "pulse").start()
    old = server.apply_env()
    player = server.play(path)
    name = "mic"
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


def pi_parity() -> tuple[float | None, str]:
    """The worst |Δp| of the committed Pi checks (bench/pi-check-SUITE.json) and where it came from."""
    figures = []
    for path in PI_CHECKS:
        doc = json.loads(path.read_text())
        if doc.get("max_delta_p") is not None:
            figures.append((float(doc["max_delta_p"]), f"{path.stem.removeprefix('pi-check-')} {doc.get('when', '')}"))
    if not figures:
        return None, "no bench/pi-check-*.json: run sudo bash scripts/pi-check.sh --record"
    worst = max(figures)
    return worst[0], "; ".join(f"{label}: {value:.4f}" for value, label in figures)


def run(args: argparse.Namespace) -> SectionResult:
    choice = model_from_dir(args.model_dir)
    res = SectionResult("daemon", "3. Whole daemon")
    res.notes.append(f"model: {choice.describe()}; command: {' '.join(daemon_command())} --source file:... --speed 0")
    rtf_s, paced_s = (4.0, 15.0) if args.quick else (10.0, 60.0)
    audio = music(60.0)
    res.notes.append(f"audio: {'GTZAN clips' if gtzan_clips(1) else 'synthetic music-like signal'}, 60 s, looped")
    with tempfile.TemporaryDirectory(prefix="bench-daemon-") as tmp:
        work = Path(tmp)
        with mosquitto(work) as port:
            fast = throughput(work, port, choice.bundle, audio, SR, rtf_s)
            fast44 = throughput(work, port, choice.bundle, audio, 44100, rtf_s)
            rt = paced(work, port, choice.bundle, audio, paced_s)
            mic = paced_mic(work, port, choice.bundle, audio, paced_s)
    rtf = Row(
        "CPU s per audio s, --speed 0, 22.05 kHz WAV",
        "CPU s/audio s",
        fast["rtf"],
        note=f"{np.median(fast['speed']):.0f}x faster than real time (wall)",
    )
    rtf44 = Row(
        "CPU s per audio s, --speed 0, 44.1 kHz WAV (+ soxr resampling)",
        "CPU s/audio s",
        fast44["rtf"],
        note=f"{np.median(fast44['speed']):.0f}x faster than real time (wall)",
    )
    res.tables.append(Table("Real-time factor (lower is better)", [rtf, rtf44], note="1 s intervals after warm-up"))
    res.tables.append(
        Table(
            "Latency at real-time pace (--speed 1): window's last sample enters the ring -> state at subscriber",
            [
                Row(
                    "total",
                    "ms",
                    rt["latency_ms"],
                    note=f"{rt['windows']} windows; p99 {np.percentile(rt['latency_ms'], 99):.1f} ms",
                ),
                Row(
                    "  of which: ring -> state JSON stamped (MFCC, inference, smoothing)",
                    "ms",
                    rt["processing_ms"],
                    note="from the state's 'time' field (ms resolution, wall clock)",
                ),
                Row("  of which: stamped -> subscriber (outbox, broker)", "ms", rt["transport_ms"]),
            ],
            note="ms; ratio to total",
        )
    )
    readies = [fast["ready_s"], fast44["ready_s"], rt["ready_s"], mic["ready_s"]]
    res.tables.append(
        Table(
            "Process: start-up and memory",
            [
                Row("spawn -> READY=1 on NOTIFY_SOCKET", "s", readies, note="4 starts (3 file, 1 mic)"),
                Row(
                    "CPU at real-time pace, file source",
                    "% of one core",
                    [rt["cpu_pct"]],
                    note=f"over {rt['cpu_window_s']:.0f} s",
                ),
                Row(
                    "CPU at real-time pace, mic through PulseAudio",
                    "% of one core",
                    [mic["cpu_pct"]],
                    note=f"over {mic['cpu_window_s']:.0f} s; all threads, libpulse's included",
                ),
                Row("steady RSS (paced run, 2nd half median)", "MB", [rt["steady_rss_mb"]]),
                Row(
                    "peak RSS (ru_maxrss, max of the 3 runs)",
                    "MB",
                    [max(fast["peak_rss_mb"], fast44["peak_rss_mb"], rt["peak_rss_mb"])],
                ),
                Row(
                    "peak RSS, mic through PulseAudio",
                    "MB",
                    [mic["peak_rss_mb"]],
                    note="+ PortAudio, ALSA and libpulse",
                ),
            ],
            note="one row per quantity; ratios are not meaningful here",
        )
    )
    peak = max(fast["peak_rss_mb"], fast44["peak_rss_mb"], rt["peak_rss_mb"])
    p50 = float(np.median(rt["latency_ms"]))
    p99 = float(np.percentile(rt["latency_ms"], 99))
    parity, parity_note = pi_parity()
    res.targets = [
        Target("whole-daemon real-time factor (22.05 kHz)", float(np.median(fast["rtf"])), "<=", 0.01, "CPU s/audio s"),
        Target("daemon CPU at real-time pace, file source", rt["cpu_pct"], "<=", 0.5, "% of a core"),
        Target("daemon CPU at real-time pace, mic through PulseAudio", mic["cpu_pct"], "<=", 0.5, "% of a core"),
        Target("daemon peak RSS (file source)", peak, "<=", 60.0, "MB"),
        Target("daemon spawn -> READY (slowest start)", max(readies), "<=", 1.0, "s"),
        Target("arm64 vs x86: max |Δp| of genre-predict (Pi check)", parity, "<=", 0.05, "", note=parity_note),
    ]
    res.facts = {
        "rtf": float(np.median(fast["rtf"])),
        "rtf44": float(np.median(fast44["rtf"])),
        "speed": float(np.median(fast["speed"])),
        "cpu_pct": rt["cpu_pct"],
        "mic_cpu_pct": mic["cpu_pct"],
        "mic_peak_rss_mb": mic["peak_rss_mb"],
        "arm64_max_delta_p": parity,
        "latency_p50_ms": p50,
        "latency_p99_ms": p99,
        "ready_s": float(np.median(readies)),
        "peak_rss_mb": peak,
        "steady_rss_mb": rt["steady_rss_mb"],
        "exit_codes": [fast["exit"], fast44["exit"], rt["exit"], mic["exit"]],
    }
    f = res.facts
    res.headline.append(
        f"Whole daemon: {f['rtf']:.4f} CPU s per audio s at --speed 0 ({f['speed']:.0f}x real time on the wall clock; "
        f"{f['rtf44'] / f['rtf']:.2f}x that with 44.1 kHz input and resampling); {f['cpu_pct']:.2f}% of one core at "
        f"real-time pace on a file, {f['mic_cpu_pct']:.2f}% on the mic through PulseAudio; "
        f"latency ring -> subscriber p50 {p50:.1f} ms, p99 {p99:.1f} ms; READY after "
        f"{f['ready_s']:.2f} s; peak RSS {peak:.0f} MB."
    )
    return res


if __name__ == "__main__":
    section_main("daemon", run)
