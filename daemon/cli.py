"""``genre-daemon``: settings -> model -> source -> MQTT + sd_notify -> the loop, and a clean exit.

Exit codes: 0 stopped by SIGTERM/SIGINT or the end of a non-looping file; 2 bad usage;
65 bad model bundle or undecodable audio; 69 audio input unavailable at start; 78 configuration.
"""

from __future__ import annotations

import argparse
import faulthandler
import logging
import os
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any, ClassVar

from daemon import __version__
from daemon.config_fields import add_flags
from daemon.config_fields import overrides_from_args as settings_overrides
from daemon.errors import ConfigError
from daemon.settings import DEFAULT_CONFIG_PATH, SECTIONS, Settings, check_against_model, hop_for, load_settings
from daemon.signals import stop_on_signals
from daemon.systemd import Notifier
from edge.errors import GenreError
from edge.runtime_choice import lite_runtime

# numpy/scipy/paho/TFLite are imported where needed, so a config error is reported in ~0.1 s
# (edge.runtime_choice only asks importlib which runtime is installed).

log = logging.getLogger("genre-daemon")
PROG = "genre-daemon"
FLUSH_TIMEOUT_S = 3.0  # at the end of a file: time to get the last state to the broker


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Classify the music genre every hop and publish it over MQTT (Home Assistant discovery).",
    )
    p.add_argument("--config", metavar="PATH", help=f"TOML config (default {DEFAULT_CONFIG_PATH}, if it exists)")
    p.add_argument("--check-config", action="store_true", help="validate config and model bundle, then exit")
    p.add_argument("--list-devices", action="store_true", help="list audio input devices and exit")
    add_flags(p, SECTIONS)  # every flag a setting's field names (daemon/settings.py)
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return p


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    return settings_overrides(args, SECTIONS)


class _JournalFormatter(logging.Formatter):
    """``<N>`` syslog priority prefixes: journald turns them into the entry's priority."""

    PRIORITY: ClassVar[dict[int, int]] = {
        logging.DEBUG: 7,
        logging.INFO: 6,
        logging.WARNING: 4,
        logging.ERROR: 3,
        logging.CRITICAL: 2,
    }

    def format(self, record: logging.LogRecord) -> str:
        return f"<{self.PRIORITY.get(record.levelno, 6)}>{super().format(record)}"


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("JOURNAL_STREAM"):
        # journald stamps each line itself; a second timestamp is noise.
        handler.setFormatter(_JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def ensure_tempdir() -> None:
    """Make sure ``tempfile`` has somewhere to write (it raises otherwise, and nothing catches it).

    The TFLite runtime (edge) and PortAudio (daemon.mic) divert their native chatter into a
    temporary file. With TMPDIR, /tmp, /var/tmp and the working directory all read-only or full,
    ``tempfile`` raises FileNotFoundError and the daemon died at start with a traceback; fall back
    to systemd's RuntimeDirectory, $XDG_RUNTIME_DIR or /dev/shm (tmpfs) instead.
    """
    import tempfile

    try:
        tempfile.gettempdir()
        return
    except OSError:
        pass
    for candidate in (os.environ.get("RUNTIME_DIRECTORY", ""), os.environ.get("XDG_RUNTIME_DIR", ""), "/dev/shm"):
        if not candidate:
            continue
        try:
            with tempfile.TemporaryFile(dir=candidate) as probe:
                probe.write(b"genre-daemon")
                probe.flush()
        except OSError:
            continue
        tempfile.tempdir = candidate
        log.warning("no writable temporary directory (read-only or full): using %s", candidate)
        return
    log.warning("no writable temporary directory anywhere (read-only or full)")


def _fail(exc: GenreError) -> int:
    print(f"{PROG}: {exc}", file=sys.stderr)
    return exc.exit_code


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.list_devices:
        return _list_devices()
    try:
        settings = load_settings(args.config, overrides_from_args(args))
    except ConfigError as exc:
        return _fail(exc)
    setup_logging(settings.log.level)
    ensure_tempdir()
    if args.check_config:
        return _check(settings)
    return run(settings)


def _list_devices() -> int:
    from daemon.mic import list_devices

    ensure_tempdir()
    try:
        devices = list_devices()
    except OSError as exc:
        print(f"{PROG}: cannot list audio devices: {exc}", file=sys.stderr)
        return 69
    if not devices:
        print("no audio input devices found")
    for d in devices:
        rate = float(d["defaultSampleRate"])
        print(f"{d['index']:3d}  {d['name']}  ({d['maxInputChannels']} ch, default {rate:.0f} Hz)")
    return 0


def _check(settings: Settings) -> int:
    from edge.bundle import load_bundle

    try:
        bundle = load_bundle(settings.model.path or None, settings.model.threads, lite_runtime(settings.model.runtime))
        check_against_model(settings, bundle.spec.window_s)
    except GenreError as exc:
        return _fail(exc)
    m = settings.mqtt
    print(f"config OK: {settings.config_path}")
    print(f"  source: {settings.source.kind}{':' + settings.source.path if settings.source.kind == 'file' else ''}")
    print(f"  model: {bundle.path} (version {bundle.version}, {len(bundle.spec.labels)} labels)")
    print(f"  mqtt: {m.host}:{m.port} tls={m.tls} user={m.username or '-'} password={'set' if m.password else '-'}")
    print(f"  topics: {settings.topic('#')}; discovery {'on' if settings.discovery.enabled else 'off'}")
    return 0


# A stop must end the process within this bound whatever hangs (systemd, the demo and HA all wait on it).
SHUTDOWN_LIMIT_S = 3.0


def _exit_if_stuck(limit_s: float) -> None:
    """Arm a timer: if the process is still alive ``limit_s`` after a stop was asked for, print every thread's
    stack (so the hang can be found) and exit. Twice in CI rehearsals under load the daemon logged "SIGTERM:
    stopping" and then nothing for 5-10 s; one cause was the stop event set inside the signal handler
    (daemon.signals). This stays as the bound on any hang not found yet."""

    def fire() -> None:
        log.error("still running %.1f s after the stop was asked for; thread stacks follow, then exit", limit_s)
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        sys.stderr.flush()
        os._exit(0)  # the stop was asked for; the broker's Last Will says offline if nothing else did

    timer = threading.Timer(limit_s, fire)
    timer.daemon = True
    timer.start()


def run(settings: Settings) -> int:
    """Run the daemon until SIGTERM/SIGINT (or the end of a non-looping file); return the exit code."""
    t_start = time.monotonic()
    stop = threading.Event()
    stop_on_signals(stop, lambda: _exit_if_stuck(SHUTDOWN_LIMIT_S))

    from daemon.discovery import discovery_messages, genre_options, topics
    from daemon.mqtt import Publisher
    from daemon.pipeline import Pipeline
    from daemon.sources import make_source
    from daemon.window_grid import WindowGrid
    from edge.bundle import load_bundle
    from edge.decide.classifier import Classifier

    notifier = Notifier()
    try:
        bundle = load_bundle(settings.model.path or None, settings.model.threads, lite_runtime(settings.model.runtime))
        check_against_model(settings, bundle.spec.window_s)
        hop_s = hop_for(settings, bundle.spec.hop_s)
        grid = WindowGrid.for_spec(bundle.spec, bundle.spec.frames_for(hop_s))
        source = make_source(settings.source, bundle.spec.sample_rate, stop, grid)
        source.open()
    except GenreError as exc:
        notifier.close()
        return _fail(exc)
    if notifier.watchdog_s and notifier.watchdog_s < 2 * hop_s + 10:
        # Pings come once per classified window; the first needs a full window (~3 s) of audio.
        log.warning("WatchdogSec=%.0f is short for hop %.1f s: use at least %.0f s", notifier.watchdog_s, hop_s,
                    2 * hop_s + 10)
    log.info(
        "model %s (version %s, %s runtime, labels: %s)",
        bundle.path,
        bundle.version,
        bundle.model.runtime,
        ", ".join(bundle.spec.labels),
    )
    tags = bundle.tags if settings.tags.enabled else None
    sensors = tags.sensors if tags else {}
    t = topics(settings, sensors)
    discovery = (discovery_messages(settings, bundle.spec.labels, bundle.version, sensors)
                 if settings.discovery.enabled else None)
    publisher = Publisher(settings.mqtt, t, discovery)
    decision = settings.pipeline.decision(bundle.decision)
    log.info("decision rule: %s", ", ".join(f"{k}={v}" for k, v in decision.to_dict().items()))
    if sensors:
        log.info("tag sensors: %s", ", ".join(f"{k} ({p.tag})" for k, p in sensors.items()))
    classifier = Classifier(bundle.spec, bundle.model, decision, hop_s, tags=tags)
    pipeline = Pipeline(
        source,
        classifier,
        publisher,
        notifier,
        stop,
        bundle.version,
        extra_counters=lambda: {"mqtt_reconnects": publisher.stats.reconnects},
        diagnostics_interval_s=settings.discovery.diagnostics_interval_s,
    )
    publisher.start()
    ready_s = time.monotonic() - t_start
    notifier.ready(f"listening ({', '.join(genre_options(bundle.spec.labels))})")
    log.info("ready in %.2f s: publishing under %s/", ready_s, settings.topic("")[:-1])
    try:
        pipeline.run()
    finally:
        notifier.stopping("stopping")
        source.close()
        if not stop.is_set():  # the file ended: let the last genre/state reach the broker first
            deadline = time.monotonic() + FLUSH_TIMEOUT_S
            while not publisher.idle() and time.monotonic() < deadline:
                time.sleep(0.02)
        publisher.stop()
        notifier.close()
    c = pipeline.counters()
    log.info("stopped after %d windows (inference %.1f ms avg)", c["windows"], c["inference_ms_avg"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
