"""Section 3: the real ``genre-daemon`` (its CLI, in its own process) publishing to a real local mosquitto.

* Throughput: a looping WAV at ``--speed 0``; real-time factor = daemon CPU seconds / audio seconds, from
  psutil CPU times and the ``stream_s`` of the states a subscriber receives, per 1 s interval after warm-up.
* Real-time pace: ``--speed 1`` on a WAV; the file source releases 0.1 s chunks into the ring buffer at
  t0 + k x 0.1 s, t0 being when it opened the file, which the bench sees through inotify. Latency = arrival
  of the state whose ``stream_s`` ends with chunk k minus that release time; CPU % = CPU s / wall s.
  (A FIFO fed by the bench would time ring entry directly, but the daemon accepts only regular files.)
* READY: time from spawning the process to READY=1 on a NOTIFY_SOCKET the bench binds.
* RSS: psutil every 0.25 s (steady = median of the second half) and ru_maxrss at exit (peak).
"""

from __future__ import annotations

import argparse
import contextlib
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

    The file source releases chunk k (0.1 s) into the ring at t0 + k x 0.1 s, t0 being when it opened the
    file; the bench sees that open through inotify, so a window ending at ``stream_s`` entered the ring at
    t0 + stream_s - 0.1 s. The inotify wake-up can only come late, which shortens the measured latency by
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
        entered = float(s) - chunk_s  # the chunk holding the window's last sample was released at its start
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
    readies = [fast["ready_s"], fast44["ready_s"], rt["ready_s"]]
    res.tables.append(
        Table(
            "Process: start-up and memory",
            [
                Row("spawn -> READY=1 on NOTIFY_SOCKET", "s", readies, note="3 starts"),
                Row("CPU at real-time pace", "% of one core", [rt["cpu_pct"]], note=f"over {rt['cpu_window_s']:.0f} s"),
                Row("steady RSS (paced run, 2nd half median)", "MB", [rt["steady_rss_mb"]]),
                Row(
                    "peak RSS (ru_maxrss, max of the 3 runs)",
                    "MB",
                    [max(fast["peak_rss_mb"], fast44["peak_rss_mb"], rt["peak_rss_mb"])],
                ),
            ],
            note="one row per quantity; ratios are not meaningful here",
        )
    )
    peak = max(fast["peak_rss_mb"], fast44["peak_rss_mb"], rt["peak_rss_mb"])
    p50 = float(np.median(rt["latency_ms"]))
    p99 = float(np.percentile(rt["latency_ms"], 99))
    res.targets = [
        Target("whole-daemon real-time factor (22.05 kHz)", float(np.median(fast["rtf"])), "<=", 0.01, "CPU s/audio s"),
        Target("daemon CPU at real-time pace", rt["cpu_pct"], "<=", 2.0, "% of a core"),
        Target("daemon peak RSS", peak, "<=", 80.0, "MB"),
        Target("daemon spawn -> READY", float(np.median(readies)), "<=", 2.0, "s"),
    ]
    res.facts = {
        "rtf": float(np.median(fast["rtf"])),
        "rtf44": float(np.median(fast44["rtf"])),
        "speed": float(np.median(fast["speed"])),
        "cpu_pct": rt["cpu_pct"],
        "latency_p50_ms": p50,
        "latency_p99_ms": p99,
        "ready_s": float(np.median(readies)),
        "peak_rss_mb": peak,
        "steady_rss_mb": rt["steady_rss_mb"],
        "exit_codes": [fast["exit"], fast44["exit"], rt["exit"]],
    }
    f = res.facts
    res.headline.append(
        f"Whole daemon: {f['rtf']:.4f} CPU s per audio s at --speed 0 ({f['speed']:.0f}x real time on the wall clock; "
        f"{f['rtf44'] / f['rtf']:.2f}x that with 44.1 kHz input and resampling); {f['cpu_pct']:.1f}% of one core at "
        f"real-time pace; latency ring -> subscriber p50 {p50:.1f} ms, p99 {p99:.1f} ms; READY after "
        f"{f['ready_s']:.2f} s; peak RSS {peak:.0f} MB."
    )
    return res


if __name__ == "__main__":
    section_main("daemon", run)
