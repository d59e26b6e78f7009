"""TOML (+ command-line overrides) -> frozen, validated settings; nothing downstream re-checks.

Every key is a dataclass field whose ``setting(...)`` metadata (``daemon.config_fields``) holds its
default, help, unit, range or choices and flag: the range and choice checks, the flags and the test
of ``systemd/config.example.toml`` all read it. Checks across keys are code here (``_finish``). Every
problem raises :class:`ConfigError` naming the file (or ``command line``), the ``section.key`` and
what is wrong. Pure apart from reading the config file, the password file and checking that named
files exist.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from daemon.config_fields import check_type, described, flag_of, problem, setting
from daemon.credentials import CredentialError, file_problem, read_password
from daemon.errors import ConfigError
from daemon.topics import default_device_id, topic_prefix_problem, topic_segment_problem
from edge.decide.params import DecisionParams
from edge.runtime_choice import LITE_RUNTIMES

DEFAULT_CONFIG_PATH = Path("/etc/genre-daemon/config.toml")
CLI_ORIGIN = "command line"
MAX_RECONNECT_S = 30
# Backoff cap by default: a broker that comes back is used again within ~5 s, however long it was gone.
DEFAULT_RECONNECT_MAX_S = 5.0


@dataclass(frozen=True)
class SourceSettings:
    """Where audio comes from."""

    kind: str = setting("mic", "audio source", choices=("mic", "file"), flag="--source", metavar="mic|file:PATH")
    path: str = setting("", "file source: wav/ogg/flac", flag="--source")
    speed: float = setting(
        1.0,
        "file pacing: 1 real time, N faster, 0 max",
        range=(0.01, 1000),
        zero="as fast as possible",
        flag="--speed",
        metavar="N",
    )
    loop: bool = setting(False, "loop a file source instead of stopping at its end", flag="--loop")
    device: str | int = setting(
        "",
        "input device name substring or PortAudio index; '' = default input",
        flag="--device",
        metavar="NAME|INDEX",
    )
    rate: int = setting(0, "mic capture rate", unit="Hz", range=(8000, 192000), zero="auto")
    channels: int = setting(
        0, "mic channels; 0 = mono if offered, else the device's (max 2)", range=(1, 32), zero="auto"
    )
    sample_format: str = setting("int16", "sample format asked of the device", choices=("int16", "float32"))
    chunk_s: float = setting(0.1, "capture/read block length", unit="s", range=(0.005, 1.0))
    queue_s: float = setting(5.0, "capture queue capacity; older audio is dropped", unit="s", range=("chunk_s", 600))
    retry_max_s: float = setting(30.0, "mic: cap of the reopen backoff", unit="s", range=(1, 300))


@dataclass(frozen=True)
class ModelSettings:
    path: str = setting("", "model bundle directory; '' = the shipped model", flag="--model", metavar="DIR")
    threads: int = setting(1, "TFLite interpreter threads", range=(1, 16))
    runtime: str = setting("", "'' = the first installed lite runtime", choices=("", *LITE_RUNTIMES))


@dataclass(frozen=True)
class PipelineSettings:
    """The hop, and overrides of the decision rule the model bundle carries (None = the bundle's value).

    The rule's constants are tuned with the model and travel in its ``model.json``
    (``edge.decide.params.DecisionParams`` documents each one and checks its range: the one source of
    those, so they carry help here and no range).
    """

    # The model's own hop by default: its decision rule is tuned per hop (switch_per_hop), and the tagger's
    # cost per window sets how often a Pi can afford one.
    hop_s: float = setting(
        0.0, "audio time between windows", unit="s", range=(0.05, 60), zero="the model's own, model.json",
        flag="--hop", metavar="SECONDS",
    )
    rule: str | None = setting(None, "'hmm' (sticky filter) or 'mean' (N-window mean + hysteresis)")
    silence_dbfs: float | None = setting(None, "window RMS below this -> 'silence', no inference", unit="dBFS")
    min_confidence: float | None = setting(None, "published state's probability below this -> 'uncertain'")
    switch_per_hop: float | None = setting(None, "hmm: prior probability of a genre change at each hop")
    temperature: float | None = setting(None, "hmm: window likelihoods are probs ** (1 / T)")
    smoothing_windows: int | None = setting(None, "mean: the mean of the last N windows' log-probabilities")
    hysteresis_windows: int | None = setting(None, "a new state must lead K consecutive hops to be published")
    hold: bool | None = setting(None, "keep the published state while it is the most probable class")
    reject_switch_per_hop: float | None = setting(None, "hmm: extra prior probability of music -> not_music a hop")
    reject_reset: float | None = setting(None, "a window this sure of not_music resets a song's evidence (1 = never)")

    def decision(self, base: DecisionParams) -> DecisionParams:
        """``base`` (the bundle's rule) with every key this config sets."""
        return base.with_overrides(**{key: getattr(self, key) for key in DECISION_KEYS})


DECISION_KEYS = tuple(f.name for f in dataclasses.fields(DecisionParams))


@dataclass(frozen=True)
class MqttSettings:
    host: str = setting("localhost", "broker host", flag="--mqtt-host", metavar="HOST")
    port: int = setting(1883, "broker port", range=(1, 65535), flag="--mqtt-port", metavar="PORT")
    prefix: str = setting("genre", "first topic level", flag="--prefix", metavar="PREFIX")
    device_id: str = setting(
        "", "topic level after the prefix; '' = the short hostname", flag="--device-id", metavar="ID"
    )
    client_id: str = setting("", "'' = genre-daemon-<device_id>")
    qos: int = setting(1, "QoS of everything published", choices=(0, 1, 2))
    keepalive_s: int = setting(60, "seconds between MQTT pings", unit="s", range=(5, 3600))
    username: str = setting("", "broker user name")
    password_file: str = setting("", "'' = $CREDENTIALS_DIRECTORY/mqtt_password when it exists")
    tls: bool = setting(False, "TLS to the broker")
    ca_file: str = setting("", "'' with tls = the system CA store")
    cert_file: str = setting("", "client certificate")
    key_file: str = setting("", "client certificate's key")
    tls_insecure: bool = setting(False, "skip hostname verification; only when explicitly asked")
    reconnect_min_s: float = setting(1.0, "first reconnect delay", unit="s", range=(0.1, MAX_RECONNECT_S))
    reconnect_max_s: float = setting(
        DEFAULT_RECONNECT_MAX_S, "cap of the reconnect backoff", unit="s", range=("reconnect_min_s", MAX_RECONNECT_S)
    )
    # Resolved from password_file / the credential; never a TOML key, never printed.
    password: str = field(default="", repr=False, compare=False)


@dataclass(frozen=True)
class DiscoverySettings:
    enabled: bool = setting(True, "Home Assistant MQTT discovery")
    prefix: str = setting("homeassistant", "Home Assistant's discovery prefix")
    device_name: str = setting("", "'' = 'Genre Pi <device_id>'")
    diagnostics_interval_s: float = setting(
        60.0, "audio between diagnostics messages (confidence, level, top-3, counters)", unit="s", range=(1, 86400)
    )


@dataclass(frozen=True)
class TagSettings:
    """The sensors a tagger bundle's tag scores drive besides the genre (none with the lite bundle)."""

    enabled: bool = setting(True, "publish the vocals and danceable sensors (a tagger bundle only)")


@dataclass(frozen=True)
class LogSettings:
    level: str = setting(
        "info",
        "debug, info, warning or error",
        choices=("debug", "info", "warning", "error"),
        fold_case=True,
        flag="--log-level",
        metavar="LEVEL",
    )


@dataclass(frozen=True)
class Settings:
    source: SourceSettings = SourceSettings()
    model: ModelSettings = ModelSettings()
    pipeline: PipelineSettings = PipelineSettings()
    mqtt: MqttSettings = MqttSettings()
    discovery: DiscoverySettings = DiscoverySettings()
    tags: TagSettings = TagSettings()
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
    "tags": TagSettings,
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
        kwargs[key] = check_type(default, value, origin, f"{section}.{key}")
    return dataclasses.replace(defaults, **kwargs)


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
        flag = flag_of(SECTIONS, dotted)
        if origin == CLI_ORIGIN and flag:
            dotted = f"{flag} ({dotted})"
        return ConfigError(problem, file=origin, key=dotted)

    def described(self, name: str, section: Any) -> None:
        """The checks every field's description states: choices and ranges, in field order."""
        for key, meta in described(type(section)):
            why = problem(meta, getattr(section, key), section)
            if why:
                raise self.fail(f"{name}.{key}", why)


def _finish(s: Settings, sections: dict[str, dict[str, tuple[Any, str]]], env: Any) -> Settings:
    c = _Checker(sections, s.config_path or "(defaults)")
    for name in SECTIONS:
        c.described(name, getattr(s, name))
    _check_source(c, s.source)
    _check_model(c, s.model)
    try:
        s.pipeline.decision(DecisionParams())
    except ValueError as exc:  # "key why", from DecisionParams.problem(): the one source of the rule's ranges
        key, _, why = str(exc).partition(" ")
        raise c.fail(f"pipeline.{key}", why) from None
    mq = _finish_mqtt(c, s.mqtt, env)
    disc = s.discovery
    prefix_problem = topic_prefix_problem(disc.prefix)
    if prefix_problem:
        raise c.fail("discovery.prefix", f"{prefix_problem}, got {disc.prefix!r}")
    disc = dataclasses.replace(disc, device_name=disc.device_name or f"Genre Pi {mq.device_id}")
    log = dataclasses.replace(s.log, level=s.log.level.lower())
    return dataclasses.replace(s, mqtt=mq, discovery=disc, log=log)


def _check_source(c: _Checker, src: SourceSettings) -> None:
    if src.kind == "file":
        if not src.path:
            raise c.fail("source.path", "a file source needs a path")
        _require_file(c, "source.path", src.path)
    if isinstance(src.device, int) and src.device < 0:
        raise c.fail("source.device", f"a device index must be >= 0, got {src.device}")


def _check_model(c: _Checker, mdl: ModelSettings) -> None:
    if mdl.path and not Path(mdl.path).is_dir():
        problem = "no such directory" if not Path(mdl.path).exists() else "must be a model bundle directory"
        raise c.fail("model.path", f"{mdl.path}: {problem}")


def _finish_mqtt(c: _Checker, mq: MqttSettings, env: Any) -> MqttSettings:
    """Checks across [mqtt] keys; the password is read, the hostname and client id filled in."""
    if not mq.host or any(ch.isspace() for ch in mq.host):
        raise c.fail("mqtt.host", f"must be a host name or address, got {mq.host!r}")
    for key in ("prefix", "device_id"):
        value = getattr(mq, key)
        if key == "device_id" and value == "" and c.origin("mqtt.device_id") != CLI_ORIGIN:
            continue  # "" in the file means "use the hostname"
        segment_problem = topic_segment_problem(value)
        if segment_problem:
            raise c.fail(f"mqtt.{key}", f"{segment_problem}, got {value!r}")
    if len(mq.client_id) > 128:
        raise c.fail("mqtt.client_id", "must be at most 128 characters")
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
    return dataclasses.replace(
        mq, device_id=device_id, client_id=mq.client_id or f"genre-daemon-{device_id}", password=password
    )


def _require_file(c: _Checker, key: str, value: str) -> None:
    problem = file_problem(value)
    if problem:
        raise c.fail(key, problem)


def hop_for(settings: Settings, model_hop_s: float) -> float:
    """The hop in seconds: the configured one, else (0) the model bundle's."""
    return settings.pipeline.hop_s or model_hop_s


def check_against_model(settings: Settings, window_s: float) -> None:
    """Settings that only make sense with the loaded model: a hop longer than its window skips audio."""
    hop = settings.pipeline.hop_s
    if hop > window_s + 1e-9:
        raise ConfigError(
            f"must be at most the model's window ({window_s:g} s), got {hop:g} s (audio between would be lost)",
            file=settings.config_path,
            key="pipeline.hop_s",
        )
