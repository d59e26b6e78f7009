"""Section 3: the real ``genre-daemon`` (its CLI, in its own process) publishing to a real local mosquitto, for the
shipped bundle and the lite bundle beside it, each at its own shipped hop (model.json ``feature_spec.hop_s``).

* Throughput: a looping WAV at ``--speed 0``; real-time factor = daemon CPU seconds / audio seconds, from
  psutil CPU times and the ``stream_s`` of the states a subscriber receives, per 1 s interval after warm-up;
  once at the model's rate (no resampling) and once at 44.1 kHz (+ soxr).
* Real-time pace, file source: ``--speed 1`` on a WAV at the model's rate; the file source releases 0.1 s chunks
  into the ring buffer at t0 + k x 0.1 s, t0 being when it opened the file, which the bench sees through
  inotify. Latency = arrival of the state whose ``stream_s`` ends with chunk k minus that release time;
  CPU % = CPU s / wall s. (A FIFO fed by the bench would time ring entry directly, but the daemon accepts only
  regular files.)
* Real-time pace, microphone: ``--source mic --device pulse`` through a private PulseAudio (tests/support/pulse.py)
  with music played into its 44.1 kHz null sink; CPU % over the same span as the file run, all threads.
* The knob: the shipped bundle once more on the file source at ``--hop 3``.
* READY: time from spawning the process to READY=1 on a NOTIFY_SOCKET the bench binds.
* arm64: the largest |Δp| between arm64 (emulated, scripts/pi-check.sh) and x86, read from bench/pi-check-*.json.
* RSS: psutil every 0.25 s (steady = median of the second half) and the kernel's VmHWM (peak since exec).
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import Row, SectionResult, Table, Target, gtzan_clips, section_main
from bench.daemon_runs import SR, mosquitto, music, paced, paced_mic, pi_parity, throughput
from bench.harness import daemon_command
from bench.model import ModelChoice, lite_from_args, model_from_dir
from edge.bundle import read_bundle_json

KNOB_HOP_S = 3.0


@dataclass(frozen=True)
class Goals:
    """Issue 25's goals for one bundle on this machine."""

    cpu_pct: float
    peak_rss_mb: float
    ready_s: float


GOALS = {"shipped": Goals(3.0, 100.0, 1.5), "lite": Goals(0.5, 60.0, 1.0)}


def measure_bundle(work: Path, port: int, b: ModelChoice, audio: Any, quick: bool, knob: bool) -> dict[str, Any]:
    rtf_s, paced_s = (4.0, 15.0) if quick else (10.0, 60.0)
    spec, _ = read_bundle_json(b.bundle)
    tag = b.kind.split()[0]
    out: dict[str, Any] = {"rate": spec.sample_rate}
    out["fast"] = throughput(work, port, b.bundle, audio, spec.sample_rate, rtf_s, tag)
    out["fast44"] = throughput(work, port, b.bundle, audio, 44100, rtf_s, tag)
    out["paced"] = paced(work, port, b.bundle, audio, paced_s, spec.sample_rate, tag, [])
    try:
        out["mic"] = paced_mic(work, port, b.bundle, audio, paced_s, tag)
    except RuntimeError as exc:  # no PulseAudio here: the row says why instead of failing the section
        out["mic_error"] = str(exc)[:300]
    if knob:
        out["knob"] = paced(
            work, port, b.bundle, audio, paced_s, spec.sample_rate, f"{tag}-hop3", ["--hop", f"{KNOB_HOP_S:g}"]
        )
    return out


def tables_for(b: ModelChoice, m: dict[str, Any]) -> list[Table]:
    fast, fast44, rt, mic = m["fast"], m["fast44"], m["paced"], m.get("mic")
    rate = m["rate"]
    tables = [
        Table(
            f"{b.label}: real-time factor (lower is better)",
            [
                Row(
                    f"CPU s per audio s, --speed 0, {rate / 1000:g} kHz WAV (the model's rate)",
                    "CPU s/audio s",
                    fast["rtf"],
                    note=f"{np.median(fast['speed']):.0f}x faster than real time (wall)",
                ),
                Row(
                    "CPU s per audio s, --speed 0, 44.1 kHz WAV (+ soxr resampling)",
                    "CPU s/audio s",
                    fast44["rtf"],
                    note=f"{np.median(fast44['speed']):.0f}x faster than real time (wall)",
                ),
            ],
            note="1 s intervals after warm-up",
        ),
        Table(
            f"{b.label}: latency at real-time pace (--speed 1), window's last sample enters the ring -> state at "
            "subscriber",
            [
                Row(
                    "total",
                    "ms",
                    rt["latency_ms"],
                    note=f"{rt['windows']} windows; p99 {np.percentile(rt['latency_ms'], 99):.1f} ms",
                ),
                Row(
                    "  of which: ring -> state JSON stamped (features, inference, smoothing)",
                    "ms",
                    rt["processing_ms"],
                    note="from the state's 'time' field (ms resolution, wall clock)",
                ),
                Row("  of which: stamped -> subscriber (outbox, broker)", "ms", rt["transport_ms"]),
            ],
            note="ms; ratio to total",
        ),
    ]
    readies = ready_list(m)
    rows = [
        Row("spawn -> READY=1 on NOTIFY_SOCKET", "s", readies, note=f"{len(readies)} starts"),
        Row(
            f"CPU at real-time pace, file source, hop {b.hop_s:g} s",
            "% of one core",
            [rt["cpu_pct"]],
            note=f"over {rt['cpu_window_s']:.0f} s",
        ),
    ]
    if mic is not None:
        rows.append(
            Row(
                f"CPU at real-time pace, mic through PulseAudio, hop {b.hop_s:g} s",
                "% of one core",
                [mic["cpu_pct"]],
                note=f"over {mic['cpu_window_s']:.0f} s; all threads, libpulse's included",
            )
        )
    else:
        rows.append(
            Row(
                "CPU at real-time pace, mic through PulseAudio",
                "% of one core",
                note=f"not measured: {m.get('mic_error', '?')}",
            )
        )
    if "knob" in m:
        k = m["knob"]
        rows.append(
            Row(
                f"CPU at real-time pace, file source, --hop {KNOB_HOP_S:g}",
                "% of one core",
                [k["cpu_pct"]],
                note=f"the knob: a window every {KNOB_HOP_S:g} s instead of {b.hop_s:g} s; latency p50 "
                f"{np.median(k['latency_ms']):.0f} ms",
            )
        )
    rows += [
        Row("steady RSS (paced file run, 2nd half median)", "MB", [rt["steady_rss_mb"]]),
        Row("peak RSS, file source (VmHWM, max of the file runs)", "MB", [peak_file(m)]),
    ]
    if mic is not None:
        rows.append(
            Row("peak RSS, mic through PulseAudio", "MB", [mic["peak_rss_mb"]], note="+ PortAudio, ALSA and libpulse")
        )
    tables.append(
        Table(f"{b.label}: start-up, CPU and memory", rows, note="one row per quantity; ratios are not meaningful here")
    )
    return tables


def ready_list(m: dict[str, Any]) -> list[float]:
    return [m[k]["ready_s"] for k in ("fast", "fast44", "paced", "mic", "knob") if k in m]


def peak_file(m: dict[str, Any]) -> float:
    return float(max(m[k]["peak_rss_mb"] for k in ("fast", "fast44", "paced", "knob") if k in m))


def targets_for(b: ModelChoice, m: dict[str, Any]) -> list[Target]:
    goals = GOALS.get(b.kind)
    if goals is None:  # the tiny test model has no goals of its own
        return []
    mic = m.get("mic")
    return [
        Target(
            f"{b.label}: daemon CPU at real-time pace, file source, hop {b.hop_s:g} s",
            m["paced"]["cpu_pct"],
            "<=",
            goals.cpu_pct,
            "% of a core",
        ),
        Target(
            f"{b.label}: daemon CPU at real-time pace, mic through PulseAudio, hop {b.hop_s:g} s",
            mic["cpu_pct"] if mic else None,
            "<=",
            goals.cpu_pct,
            "% of a core",
            note="" if mic else f"not measured: {m.get('mic_error', '?')}",
        ),
        Target(
            f"{b.label}: daemon peak RSS (file source)",
            peak_file(m),
            "<=",
            goals.peak_rss_mb,
            "MB",
            note=f"mic path: {mic['peak_rss_mb']:.0f} MB (+ PortAudio, libpulse)" if mic else "",
        ),
        Target(f"{b.label}: daemon spawn -> READY (slowest start)", max(ready_list(m)), "<=", goals.ready_s, "s"),
    ]


def facts_for(m: dict[str, Any]) -> dict[str, Any]:
    rt, mic = m["paced"], m.get("mic")
    return {
        "rtf": float(np.median(m["fast"]["rtf"])),
        "rtf44": float(np.median(m["fast44"]["rtf"])),
        "speed": float(np.median(m["fast"]["speed"])),
        "cpu_pct": rt["cpu_pct"],
        "mic_cpu_pct": mic["cpu_pct"] if mic else None,
        "mic_peak_rss_mb": mic["peak_rss_mb"] if mic else None,
        "knob_cpu_pct": m["knob"]["cpu_pct"] if "knob" in m else None,
        "latency_p50_ms": float(np.median(rt["latency_ms"])),
        "latency_p99_ms": float(np.percentile(rt["latency_ms"], 99)),
        "ready_s": float(np.median(ready_list(m))),
        "ready_max_s": max(ready_list(m)),
        "peak_rss_mb": peak_file(m),
        "steady_rss_mb": rt["steady_rss_mb"],
        "exit_codes": [m[k]["exit"] for k in ("fast", "fast44", "paced", "mic", "knob") if k in m],
    }


def headline(b: ModelChoice, f: dict[str, Any]) -> str:
    mic = (
        f"{f['mic_cpu_pct']:.2f}% on the mic through PulseAudio" if f["mic_cpu_pct"] is not None else "mic not measured"
    )
    knob = f" ({f['knob_cpu_pct']:.2f}% at --hop {KNOB_HOP_S:g})" if f["knob_cpu_pct"] is not None else ""
    return (
        f"Whole daemon, {b.label} at hop {b.hop_s:g} s: {f['cpu_pct']:.2f}% of one core at real-time pace on a file"
        f"{knob}, {mic}; {f['rtf']:.4f} CPU s per audio s at --speed 0 ({f['speed']:.0f}x real time on the wall "
        f"clock); latency ring -> subscriber p50 {f['latency_p50_ms']:.1f} ms, p99 {f['latency_p99_ms']:.1f} ms; "
        f"READY after {f['ready_s']:.2f} s (slowest {f['ready_max_s']:.2f} s); peak RSS {f['peak_rss_mb']:.0f} MB."
    )


def run(args: argparse.Namespace) -> SectionResult:
    choice = model_from_dir(args.model_dir)
    lite = lite_from_args(args.lite_dir)
    bundles = [choice] + ([lite] if lite else [])
    res = SectionResult("daemon", "3. Whole daemon")
    res.notes.append(f"command: {' '.join(daemon_command())} --source file:... --speed 0|1, or --source mic")
    for b in bundles:
        res.notes.append(f"{b.label}: {b.describe()}")
    audio = music(60.0)
    res.notes.append(
        f"audio: {'GTZAN clips' if gtzan_clips(1) else 'synthetic music-like signal'}, 60 s at "
        f"{SR} Hz, resampled to each run's WAV rate, looped"
    )
    measured: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-daemon-") as tmp:
        work = Path(tmp)
        with mosquitto(work) as port:
            for b in bundles:
                measured[b.kind] = measure_bundle(work, port, b, audio, args.quick, knob=b is choice)
    for b in bundles:
        m = measured[b.kind]
        res.tables += tables_for(b, m)
        res.targets += targets_for(b, m)
        res.facts[b.kind] = facts_for(m)
        res.headline.append(headline(b, res.facts[b.kind]))
    version = str(choice.meta.get("model", {}).get("version", "?"))
    parity, parity_note = pi_parity(version)
    res.targets.append(
        Target(
            f"{choice.label}: arm64 vs x86, max |Δp| of genre-predict (Pi check)",
            parity,
            "<=",
            0.02,
            "",
            note=parity_note,
        )
    )
    res.facts["arm64_max_delta_p"] = parity
    return res


if __name__ == "__main__":
    section_main("daemon", run)
