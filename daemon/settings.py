"""TOML (+ command-line overrides) -> frozen, validated settings; nothing downstream re-checks.

Every key has a default (documented in ``systemd/config.example.toml``). Every problem raises
:class:`ConfigError` naming the file (or ``command line``), the ``section.key`` and what is wrong.
Pure apart from reading the config file, the password file and checking that named files exist.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from daemon.credentials import CredentialError, file_problem, read_password
from daemon.errors import ConfigError
from daemon.topics import default_device_id, topic_prefix_problem, topic_segment_problem
from edge.decide.params import DecisionParams

DEFAULT_CONFIG_PATH = Path("/etc/genre-daemon/config.toml")
CLI_ORIGIN = "command line"
LOG_LEVELS = ("debug", "info", "warning", "error")
SAMPLE_FORMATS = ("int16", "float32")
RUNTIMES = ("", "ai_edge_litert", "tflite_runtime")
MAX_RECONNECT_S = 30.0
# Backoff cap by default: a broker that comes back is used again within ~5 s, however long it was gone.
DEFAULT_RECONNECT_MAX_S = 5.0


@dataclass(frozen=True)
class SourceSettings:
    """Where audio comes from. Seconds for ``*_s`` and Hz for ``rate``."""

    kind: str = "mic"  # "mic" or "file"
    path: str = ""  # file source: wav/ogg/flac
    speed: float = 1.0  # file pacing: 1 = real time, N = N times faster, 0 = as fast as possible
    loop: bool = False  # file source: start again at the end instead of stopping
    device: str | int = ""  # mic: input device name substring or PortAudio index; "" = default input
    rate: int = 0  # mic capture rate in Hz; 0 = the device's default if supported, else 48000/44100
    channels: int = 0  # mic channels; 0 = mono if the device offers it, else its channels (max 2)
    sample_format: str = "int16"
    chunk_s: float = 0.1  # capture/read block length
    queue_s: float = 5.0  # capture queue capacity; older audio is dropped (and counted) beyond it
    retry_max_s: float = 30.0  # mic: cap of the reopen backoff after the device vanished


@dataclass(frozen=True)
class ModelSettings:
    path: str = ""  # model bundle directory; "" = the model shipped in the package
    threads: int = 1
    runtime: str = ""  # "" = first installed of ai_edge_litert, tflite_runtime


@dataclass(frozen=True)
class PipelineSettings:
    """The hop, and overrides of the decision rule the model bundle carries (None = the bundle's value).

    The rule's constants are tuned with the model and travel in its ``model.json``
    (``edge.decide.params.DecisionParams`` documents each one and checks its range).
    """

    hop_s: float = 1.0  # audio time between classified windows
    rule: str | None = None  # "hmm" (sticky filter) or "mean" (N-window mean + hysteresis)
    silence_dbfs: float | None = None  # window RMS below this -> "silence", no inference
    min_confidence: float | None = None  # published state's probability below this -> "uncertain"
    switch_per_hop: float | None = None  # hmm: prior probability of a genre change at each hop
    temperature: float | None = None  # hmm: window likelihoods are probs ** (1 / T)
    smoothing_windows: int | None = None  # mean: N, the mean of the last N windows' log-probabilities
    hysteresis_windows: int | None = None  # K: a new state must lead K consecutive hops before it is published
    hold: bool | None = None  # keep the published state while it is the most probable class

    def decision(self, base: DecisionParams) -> DecisionParams:
        """``base`` (the bundle's rule) with every key this config sets."""
        return base.with_overrides(**{key: getattr(self, key) for key in DECISION_KEYS})


DECISION_KEYS = tuple(f.name for f in dataclasses.fields(DecisionParams))


@dataclass(frozen=True)
class MqttSettings:
    host: str = "localhost"
    port: int = 1883
    prefix: str = "genre"
    device_id: str = ""  # "" = the short hostname
    client_id: str = ""  # "" = genre-daemon-<device_id>
    qos: int = 1
    keepalive_s: int = 60
    username: str = ""
    password_file: str = ""  # "" = $CREDENTIALS_DIRECTORY/mqtt_password when it exists
    tls: bool = False
    ca_file: str = ""  # "" with tls = the system CA store
    cert_file: str = ""
    key_file: str = ""
    tls_insecure: bool = False  # skip hostname verification; only when explicitly asked
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = DEFAULT_RECONNECT_MAX_S
    # Resolved from password_file / the credential; never a TOML key, never printed.
    password: str = field(default="", repr=False, compare=False)


@dataclass(frozen=True)
class DiscoverySettings:
    enabled: bool = True
    prefix: str = "homeassistant"
    device_name: str = ""  # "" = "Genre Pi <device_id>"
    diagnostics_interval_s: float = 60.0  # confidence, level, top-3, counters (audio seconds)


@dataclass(frozen=True)
class LogSettings:
    level: str = "info"


@dataclass(frozen=True)
class Settings:
    source: SourceSettings = SourceSettings()
    model: ModelSettings = ModelSettings()
    pipeline: PipelineSettings = PipelineSettings()
    mqtt: MqttSettings = MqttSettings()
    discovery: DiscoverySettings = DiscoverySettings()
    log: LogSettings = LogSettings()
    config_path: str | None = None

    def topic(self, leaf: str) -> str:
        """``<prefix>/<device_id>/<leaf>``."""
        return f"{self.mqtt.prefix}/{self.mqtt.device_id}/{leaf}"


SECTIONS: dict[str, type[Any]] = {
    "source": SourceSettings,
    "model": ModelSettings,
    "pipeline": PipelineSettings,
    "mqtt": MqttSettings,
    "discovery": DiscoverySettings,
    "log": LogSettings,
}
_NOT_KEYS = {("mqtt", "password")}
_HINTS = {
    ("mqtt", "password"): "not accepted in the config; put it in a file named by mqtt.password_file "
    "or pass it with systemd LoadCredential=mqtt_password:<file>",
}


def load_settings(
    path: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
) -> Settings:
    """Read ``path`` (None = the default path if it exists, else all defaults) and apply ``overrides``.

    ``overrides`` maps ``"section.key"`` to a value from the command line; errors in those name
    ``command line`` instead of the file.
    """
    env = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    origin = str(path) if path is not None else str(DEFAULT_CONFIG_PATH)
    if path is not None or DEFAULT_CONFIG_PATH.exists():
        data = _read_toml(Path(origin))
    else:
        origin = "(defaults)"
    sections = _parse_sections(data, origin)
    for dotted, value in (overrides or {}).items():
        section, key = dotted.split(".", 1)
        sections.setdefault(section, {})[key] = (value, CLI_ORIGIN)
    built: dict[str, Any] = {}
    for name, cls in SECTIONS.items():
        built[name] = _build(cls, name, sections.get(name, {}))
    settings = Settings(**built, config_path=origin)
    return _finish(settings, sections, env)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError("no such file", file=str(path)) from None
    except IsADirectoryError:
        raise ConfigError("is a directory, not a config file", file=str(path)) from None
    except PermissionError:
        raise ConfigError("permission denied", file=str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML: {exc}", file=str(path)) from None
    except UnicodeDecodeError:
        raise ConfigError("invalid TOML: not UTF-8", file=str(path)) from None


def _parse_sections(data: dict[str, Any], origin: str) -> dict[str, dict[str, tuple[Any, str]]]:
    out: dict[str, dict[str, tuple[Any, str]]] = {}
    for name, table in data.items():
        if name not in SECTIONS:
            known = ", ".join(SECTIONS)
            raise ConfigError(f"unknown section (known: {known})", file=origin, key=name)
        if not isinstance(table, dict):
            raise ConfigError("must be a table ([section])", file=origin, key=name)
        fields = {f.name for f in dataclasses.fields(SECTIONS[name])} - {"password"}
        for key, value in table.items():
            dotted = f"{name}.{key}"
            if (name, key) in _HINTS:
                raise ConfigError(_HINTS[(name, key)], file=origin, key=dotted)
            if key not in fields:
                raise ConfigError(
                    f"unknown key (known in [{name}]: {', '.join(sorted(fields))})", file=origin, key=dotted
                )
            out.setdefault(name, {})[key] = (value, origin)
    return out


def _build(cls: type[Any], section: str, values: dict[str, tuple[Any, str]]) -> Any:
    defaults = cls()
    kwargs: dict[str, Any] = {}
    for key, (value, origin) in values.items():
        if (section, key) in _NOT_KEYS:
            continue
        default = getattr(defaults, key)
        if default is None and key in DECISION_KEYS:  # "from the model": typed like the rule's own default
            default = getattr(DecisionParams(), key)
        kwargs[key] = _check_type(default, value, origin, f"{section}.{key}")
    return dataclasses.replace(defaults, **kwargs)


def _type_name(value: Any) -> str:
    names = {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "a table",
    }
    return names.get(type(value), type(value).__name__)


def _check_type(default: Any, value: Any, origin: str, key: str) -> Any:
    """Same type as the default (int accepted where a float is expected); ``source.device`` is str or int."""
    if key == "source.device":
        if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        raise ConfigError(f"must be a string or an integer, got {_type_name(value)} {value!r}", file=origin, key=key)
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
        if ok and not math.isfinite(value):
            raise ConfigError("must be a finite number", file=origin, key=key)
    else:
        ok = isinstance(value, str)
    if not ok:
        raise ConfigError(f"must be {_type_name(default)}, got {_type_name(value)} {value!r}", file=origin, key=key)
    return value


class _Checker:
    """Collects the first problem of the final settings, naming where each key came from."""

    def __init__(self, sections: dict[str, dict[str, tuple[Any, str]]], default_origin: str) -> None:
        self.sections = sections
        self.default_origin = default_origin

    def origin(self, dotted: str) -> str:
        section, key = dotted.split(".", 1)
        return self.sections.get(section, {}).get(key, (None, self.default_origin))[1]

    def fail(self, dotted: str, problem: str) -> ConfigError:
        origin = self.origin(dotted)
        flag = _CLI_FLAGS.get(dotted)
        if origin == CLI_ORIGIN and flag:
            dotted = f"{flag} ({dotted})"
        return ConfigError(problem, file=origin, key=dotted)


_CLI_FLAGS = {
    "source.kind": "--source",
    "source.path": "--source",
    "source.device": "--device",
    "source.speed": "--speed",
    "source.loop": "--loop",
    "mqtt.host": "--mqtt-host",
    "mqtt.port": "--mqtt-port",
    "mqtt.device_id": "--device-id",
    "mqtt.prefix": "--prefix",
    "model.path": "--model",
    "pipeline.hop_s": "--hop",
    "log.level": "--log-level",
}


def _finish(s: Settings, sections: dict[str, dict[str, tuple[Any, str]]], env: Any) -> Settings:
    c = _Checker(sections, s.config_path or "(defaults)")
    src, mdl, pipe, mq, disc = s.source, s.model, s.pipeline, s.mqtt, s.discovery

    if src.kind not in ("mic", "file"):
        raise c.fail("source.kind", f"must be 'mic' or 'file', got {src.kind!r}")
    if src.kind == "file":
        if not src.path:
            raise c.fail("source.path", "a file source needs a path")
        _require_file(c, "source.path", src.path)
    if not (src.speed == 0 or 0.01 <= src.speed <= 1000):
        raise c.fail("source.speed", f"must be 0 (as fast as possible) or in 0.01..1000, got {src.speed}")
    if isinstance(src.device, int) and src.device < 0:
        raise c.fail("source.device", f"a device index must be >= 0, got {src.device}")
    if src.rate != 0 and not 8000 <= src.rate <= 192000:
        raise c.fail("source.rate", f"must be 0 (auto) or 8000..192000 Hz, got {src.rate}")
    if not 0 <= src.channels <= 32:
        raise c.fail("source.channels", f"must be 0 (auto) or 1..32, got {src.channels}")
    if src.sample_format not in SAMPLE_FORMATS:
        raise c.fail("source.sample_format", f"must be one of {', '.join(SAMPLE_FORMATS)}, got {src.sample_format!r}")
    if not 0.005 <= src.chunk_s <= 1.0:
        raise c.fail("source.chunk_s", f"must be in 0.005..1.0 s, got {src.chunk_s}")
    if not src.chunk_s <= src.queue_s <= 600:
        raise c.fail("source.queue_s", f"must be in chunk_s..600 s, got {src.queue_s}")
    if not 1 <= src.retry_max_s <= 300:
        raise c.fail("source.retry_max_s", f"must be in 1..300 s, got {src.retry_max_s}")

    if mdl.path and not Path(mdl.path).is_dir():
        problem = "no such directory" if not Path(mdl.path).exists() else "must be a model bundle directory"
        raise c.fail("model.path", f"{mdl.path}: {problem}")
    if not 1 <= mdl.threads <= 16:
        raise c.fail("model.threads", f"must be in 1..16, got {mdl.threads}")
    if mdl.runtime not in RUNTIMES:
        raise c.fail("model.runtime", f"must be one of {', '.join(repr(r) for r in RUNTIMES)}, got {mdl.runtime!r}")

    if not 0.05 <= pipe.hop_s <= 60:
        raise c.fail("pipeline.hop_s", f"must be in 0.05..60 s, got {pipe.hop_s}")
    try:
        pipe.decision(DecisionParams())
    except ValueError as exc:  # "key why", from DecisionParams.problem()
        key, _, why = str(exc).partition(" ")
        raise c.fail(f"pipeline.{key}", why) from None

    if not mq.host or any(ch.isspace() for ch in mq.host):
        raise c.fail("mqtt.host", f"must be a host name or address, got {mq.host!r}")
    if not 1 <= mq.port <= 65535:
        raise c.fail("mqtt.port", f"must be in 1..65535, got {mq.port}")
    for key in ("prefix", "device_id"):
        value = getattr(mq, key)
        if key == "device_id" and value == "" and c.origin("mqtt.device_id") != CLI_ORIGIN:
            continue  # "" in the file means "use the hostname"
        segment_problem = topic_segment_problem(value)
        if segment_problem:
            raise c.fail(f"mqtt.{key}", f"{segment_problem}, got {value!r}")
    if len(mq.client_id) > 128:
        raise c.fail("mqtt.client_id", "must be at most 128 characters")
    if mq.qos not in (0, 1, 2):
        raise c.fail("mqtt.qos", f"must be 0, 1 or 2, got {mq.qos}")
    if not 5 <= mq.keepalive_s <= 3600:
        raise c.fail("mqtt.keepalive_s", f"must be in 5..3600 s, got {mq.keepalive_s}")
    if not 0.1 <= mq.reconnect_min_s <= MAX_RECONNECT_S:
        raise c.fail("mqtt.reconnect_min_s", f"must be in 0.1..{MAX_RECONNECT_S:g} s, got {mq.reconnect_min_s}")
    if not mq.reconnect_min_s <= mq.reconnect_max_s <= MAX_RECONNECT_S:
        raise c.fail(
            "mqtt.reconnect_max_s", f"must be in reconnect_min_s..{MAX_RECONNECT_S:g} s, got {mq.reconnect_max_s}"
        )
    for key in ("ca_file", "cert_file", "key_file"):
        value = getattr(mq, key)
        if value:
            if not mq.tls:
                raise c.fail(f"mqtt.{key}", "is set but mqtt.tls is false")
            _require_file(c, f"mqtt.{key}", value)
    if mq.key_file and not mq.cert_file:
        raise c.fail("mqtt.key_file", "needs mqtt.cert_file as well")
    if mq.tls_insecure and not mq.tls:
        raise c.fail("mqtt.tls_insecure", "is true but mqtt.tls is false")
    try:
        password = read_password(mq.password_file, env)
    except CredentialError as exc:
        raise c.fail(exc.key, exc.problem) from None
    if password and not mq.username:
        raise c.fail("mqtt.username", "a password is configured but no username")
    device_id = mq.device_id or default_device_id()
    mq = dataclasses.replace(
        mq, device_id=device_id, client_id=mq.client_id or f"genre-daemon-{device_id}", password=password
    )

    prefix_problem = topic_prefix_problem(disc.prefix)
    if prefix_problem:
        raise c.fail("discovery.prefix", f"{prefix_problem}, got {disc.prefix!r}")
    if not 1 <= disc.diagnostics_interval_s <= 86400:
        raise c.fail("discovery.diagnostics_interval_s", f"must be in 1..86400 s, got {disc.diagnostics_interval_s}")
    disc = dataclasses.replace(disc, device_name=disc.device_name or f"Genre Pi {device_id}")
    if s.log.level.lower() not in LOG_LEVELS:
        raise c.fail("log.level", f"must be one of {', '.join(LOG_LEVELS)}, got {s.log.level!r}")
    log = dataclasses.replace(s.log, level=s.log.level.lower())
    return dataclasses.replace(s, mqtt=mq, discovery=disc, log=log)


def _require_file(c: _Checker, key: str, value: str) -> None:
    problem = file_problem(value)
    if problem:
        raise c.fail(key, problem)


def check_against_model(settings: Settings, window_s: float) -> None:
    """Settings that only make sense with the loaded model: a hop longer than its window skips audio."""
    hop = settings.pipeline.hop_s
    if hop > window_s + 1e-9:
        raise ConfigError(
            f"must be at most the model's window ({window_s:g} s), got {hop:g} s (audio between would be lost)",
            file=settings.config_path,
            key="pipeline.hop_s",
        )
