"""A real ``mosquitto`` broker per test (or per session), and an MQTT probe client.

The broker listens on 127.0.0.1 only, on a free port picked at start and kept
across :meth:`MosquittoBroker.restart`, so "broker goes away and comes back"
tests see the same address. Start-up takes ~25 ms (plain; ~0.2 s the first time
with TLS + password file, which are generated then), a restart ~25 ms.

Example (plain broker)::

    with MosquittoBroker(tmp_path / "mq") as broker:
        with MqttProbe(broker, "genre-pi/test1/#") as probe:
            probe.publish("genre-pi/test1/state", b"jazz", retain=True)
            msg = probe.wait_for("genre-pi/test1/state", lambda m: m.payload == b"jazz")
            assert msg.retain is False  # live delivery; a late subscriber sees retain=True

Example (auth + TLS)::

    broker = MosquittoBroker(tmp_path / "mq", users={"pi": "s3cret"}, allow_anonymous=False, tls=True)
    broker.start()
    probe = MqttProbe(broker, "#", username="pi", password="s3cret", use_tls=True)
    ...
    probe.close()
    broker.stop()
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from tests.support.procs import ServiceProcess, die_with_parent, register_cleanup
from tests.support.tls import TlsBundle, make_tls_bundle

__all__ = [
    "ConnectOutcome",
    "MosquittoBroker",
    "MqttMessage",
    "MqttProbe",
    "free_port",
    "mosquitto_available",
    "try_connect",
    "unique_prefix",
]

# Seconds. Generous upper bounds: normal figures are ~10 ms (start) and <5 ms (stop).
DEFAULT_START_TIMEOUT_S = 5.0
DEFAULT_STOP_TIMEOUT_S = 5.0


def mosquitto_available() -> bool:
    """True when both ``mosquitto`` and ``mosquitto_passwd`` are installed."""
    return shutil.which("mosquitto") is not None and shutil.which("mosquitto_passwd") is not None


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago.

    There is an unavoidable race between closing this probe socket and the
    broker binding; :meth:`MosquittoBroker.start` retries with a new port if
    the bind fails (only on the first start, never on restart).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _port_accepts(port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


class MosquittoBroker(ServiceProcess):
    """One ``mosquitto -c <conf>`` process with a generated config in ``workdir``.

    Args:
        workdir: directory for config, password file, PKI and ``mosquitto.log``
            (created; normally a pytest ``tmp_path`` subdirectory).
        users: ``{username: password}``; writes a ``password_file`` with
            ``mosquitto_passwd -b -c``. Empty -> no password file.
        allow_anonymous: mosquitto 2.x defaults to *false* when listeners are
            configured, so this is always written out explicitly.
        tls: add a second listener (``tls_port``) with a server cert from
            :func:`tests.support.tls.make_tls_bundle`; see :attr:`tls`.
        require_client_cert: on the TLS listener, demand a client cert
            signed by the test CA (``bundle.client_cert``).
        extra_config: verbatim lines appended to the config (e.g.
            ``["max_keepalive 5"]``).

    Attributes ``host``, ``port`` (plain), ``tls_port`` (``None`` without TLS),
    ``log_path`` and ``tls`` (:class:`TlsBundle` or ``None``) are stable for the
    object's life, including across restarts.
    """

    host = "127.0.0.1"

    def __init__(
        self,
        workdir: Path,
        *,
        users: dict[str, str] | None = None,
        allow_anonymous: bool = True,
        tls: bool = False,
        require_client_cert: bool = False,
        extra_config: list[str] | None = None,
    ) -> None:
        super().__init__(workdir / "mosquitto.log")
        self.stop_timeout_s = DEFAULT_STOP_TIMEOUT_S
        self.workdir = workdir
        self.users = dict(users or {})
        self.allow_anonymous = allow_anonymous
        self.use_tls = tls
        self.require_client_cert = require_client_cert
        self.extra_config = list(extra_config or [])
        self.port = 0
        self.tls_port: int | None = None
        self.tls: TlsBundle | None = None
        self.conf_path = workdir / "mosquitto.conf"
        self.start_seconds: float | None = None  # wall time of the last start(), for reports
        self._prepared = False
        self._cleanup_registered = False

    # -- lifecycle ---------------------------------------------------------

    def _prepare(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.users:
            pw = self.workdir / "passwd"
            first = True
            for user, password in self.users.items():
                # -c only for the first user: it truncates the file.
                args = ["mosquitto_passwd", "-b", *(["-c"] if first else []), str(pw), user, password]
                subprocess.run(args, check=True, capture_output=True, timeout=10)
                first = False
            pw.chmod(0o644)
        if self.use_tls:
            self.tls = make_tls_bundle(self.workdir / "pki")
        self._prepared = True

    def _write_config(self) -> None:
        lines = [
            # Started as root, mosquitto 2.x drops to the `mosquitto` user, which
            # cannot traverse pytest's 0700 tmp dirs (/tmp/pytest-of-root/...), so
            # chmod on our own files would not be enough. `user root` keeps it as
            # root; when tests run unprivileged the option is ignored.
            "user root",
            "persistence false",
            "log_dest stderr",
            "log_type all",
            "log_timestamp true",
            "log_timestamp_format %H:%M:%S",
            "connection_messages true",
            # Listener options (auth, TLS) apply to each listener independently.
            "per_listener_settings true",
            f"listener {self.port} {self.host}",
            *self._auth_lines(),
        ]
        if self.use_tls:
            assert self.tls is not None and self.tls_port is not None
            lines += [
                f"listener {self.tls_port} {self.host}",
                *self._auth_lines(),
                f"cafile {self.tls.ca_cert}",
                f"certfile {self.tls.server_cert}",
                f"keyfile {self.tls.server_key}",
                f"require_certificate {'true' if self.require_client_cert else 'false'}",
            ]
        lines += self.extra_config
        self.conf_path.write_text("\n".join(lines) + "\n")
        self.conf_path.chmod(0o644)

    def _auth_lines(self) -> list[str]:
        lines = [f"allow_anonymous {'true' if self.allow_anonymous else 'false'}"]
        if self.users:
            lines.append(f"password_file {self.workdir / 'passwd'}")
        return lines

    def start(self, timeout: float = DEFAULT_START_TIMEOUT_S) -> MosquittoBroker:
        """Start the broker and block until every listener accepts TCP connections.

        The first call picks free ports; later calls (see :meth:`restart`)
        reuse them. Raises ``RuntimeError`` with the broker log if it exits
        or is not ready within ``timeout`` seconds. Returns ``self``.
        """
        if self.running:
            return self
        if not self._prepared:
            self._prepare()
        first_start = self.port == 0
        attempts = 5 if first_start else 1
        for attempt in range(attempts):
            if first_start:
                self.port = free_port()
                self.tls_port = free_port() if self.use_tls else None
                if self.tls_port == self.port:
                    continue
            try:
                self._spawn(timeout)
                return self
            except RuntimeError:
                # A port race loses only on the first start; anything else is real.
                if attempt + 1 < attempts and "Address already in use" in self.log_text():
                    continue
                raise
        raise RuntimeError("could not find free ports for mosquitto")

    def _spawn(self, timeout: float) -> None:
        self._write_config()
        self._log_handle = self.log_path.open("ab")
        t0 = time.monotonic()
        self._proc = subprocess.Popen(
            ["mosquitto", "-c", str(self.conf_path)],
            stdin=subprocess.DEVNULL,
            stdout=self._log_handle,
            stderr=subprocess.STDOUT,
            # Own process group: a Ctrl-C in the terminal must not kill the broker
            # before the test's teardown does.
            start_new_session=True,
            preexec_fn=die_with_parent(),
        )
        if not self._cleanup_registered:
            register_cleanup(self.kill)
            self._cleanup_registered = True
        ports = [self.port] + ([self.tls_port] if self.tls_port else [])
        deadline = t0 + timeout
        while True:
            if self._proc.poll() is not None:
                rc = self._proc.returncode
                self._reap()
                raise RuntimeError(f"mosquitto exited with {rc} during start:\n{self.log_text()}")
            if all(_port_accepts(p) for p in ports):
                break
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"mosquitto not ready on {ports} after {timeout}s:\n{self.log_text()}")
            time.sleep(0.005)
        self.start_seconds = time.monotonic() - t0

    def restart(self, down_seconds: float = 0.0, *, hard: bool = False) -> None:
        """Stop (or kill, ``hard=True``), stay down ``down_seconds``, start on the same ports.

        Retained messages are lost (``persistence false``), as on a broker
        restart without a persistence file.
        """
        if hard:
            self.kill()
        else:
            self.stop()
        if down_seconds > 0:
            time.sleep(down_seconds)
        self.start()

    def pause(self) -> None:
        """SIGSTOP: TCP stays open but nothing is answered (half-dead broker, keepalive tests)."""
        if self._proc is not None and self._proc.poll() is None:
            os.kill(self._proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        if self._proc is not None and self._proc.poll() is None:
            os.kill(self._proc.pid, signal.SIGCONT)

    # -- conveniences ------------------------------------------------------

    def url(self, *, tls: bool = False) -> str:
        """``mqtt://127.0.0.1:PORT`` or ``mqtts://127.0.0.1:TLS_PORT``, e.g. for daemon config."""
        if tls:
            if self.tls_port is None:
                raise ValueError("broker was created without tls=True")
            return f"mqtts://{self.host}:{self.tls_port}"
        return f"mqtt://{self.host}:{self.port}"

    def __repr__(self) -> str:
        return f"MosquittoBroker(port={self.port}, tls_port={self.tls_port}, pid={self.pid})"


# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MqttMessage:
    """One received message. ``received_at`` is ``time.monotonic()`` on arrival."""

    topic: str
    payload: bytes
    retain: bool
    qos: int
    received_at: float

    @property
    def text(self) -> str:
        return self.payload.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class ConnectOutcome:
    """Result of :func:`try_connect`: ``reason_code`` from CONNACK, or ``error`` if it never got one."""

    reason_code: ReasonCode | None
    error: BaseException | None

    @property
    def ok(self) -> bool:
        return self.error is None and self.reason_code is not None and not self.reason_code.is_failure

    def __str__(self) -> str:
        if self.error is not None:
            return f"error {type(self.error).__name__}: {self.error}"
        return f"CONNACK {self.reason_code}"


def _new_client(
    broker: MosquittoBroker,
    *,
    client_id: str | None,
    username: str | None,
    password: str | None,
    use_tls: bool,
    ca_cert: Path | None,
    client_cert: Path | None,
    client_key: Path | None,
    protocol: MQTTProtocolVersion,
) -> tuple[mqtt.Client, int]:
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id or f"probe-{uuid.uuid4().hex[:10]}",
        protocol=protocol,
    )
    if username is not None:
        client.username_pw_set(username, password)
    port = broker.port
    if use_tls:
        if broker.tls is None or broker.tls_port is None:
            raise ValueError("use_tls=True needs a broker created with tls=True")
        ctx = ssl.create_default_context(cafile=str(ca_cert or broker.tls.ca_cert))
        if client_cert is not None:
            ctx.load_cert_chain(str(client_cert), str(client_key) if client_key else None)
        client.tls_set_context(ctx)
        port = broker.tls_port
    return client, port


def try_connect(
    broker: MosquittoBroker,
    *,
    username: str | None = None,
    password: str | None = None,
    use_tls: bool = False,
    ca_cert: Path | None = None,
    client_cert: Path | None = None,
    client_key: Path | None = None,
    port: int | None = None,
    protocol: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv311,
    timeout: float = 5.0,
) -> ConnectOutcome:
    """Connect once, synchronously, and report how it went; never raises for a refused connection.

    Use for auth/TLS negative tests. ``port`` overrides the listener (e.g.
    plain MQTT to ``broker.tls_port``). ``ca_cert`` defaults to the broker's CA.

    Example::

        out = try_connect(broker, username="pi", password="wrong")
        assert out.reason_code is not None and out.reason_code.is_failure, str(out)
        out = try_connect(broker, use_tls=True, ca_cert=broker.tls.other_ca_cert)
        assert isinstance(out.error, ssl.SSLCertVerificationError), str(out)
    """
    client, default_port = _new_client(
        broker,
        client_id=None,
        username=username,
        password=password,
        use_tls=use_tls,
        ca_cert=ca_cert,
        client_cert=client_cert,
        client_key=client_key,
        protocol=protocol,
    )
    done = threading.Event()
    result: dict[str, ReasonCode] = {}

    def on_connect(c: mqtt.Client, ud: Any, flags: Any, rc: ReasonCode, props: Any) -> None:
        result["rc"] = rc
        done.set()

    client.on_connect = on_connect
    client.connect_timeout = timeout
    try:
        client.connect(broker.host, port or default_port, keepalive=10)
    except (OSError, ssl.SSLError) as exc:
        return ConnectOutcome(None, exc)
    deadline = time.monotonic() + timeout
    try:
        while not done.is_set() and time.monotonic() < deadline:
            rc = client.loop(timeout=0.05)
            if rc not in (mqtt.MQTT_ERR_SUCCESS,) and not done.is_set():
                # Broker closed the socket without CONNACK (e.g. MQTT on a TLS port).
                return ConnectOutcome(None, ConnectionError(f"loop returned {mqtt.error_string(rc)}"))
    except (OSError, ssl.SSLError) as exc:
        return ConnectOutcome(None, exc)
    finally:
        if done.is_set():
            client.disconnect()
        sock = client.socket()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()
    if not done.is_set():
        return ConnectOutcome(None, TimeoutError(f"no CONNACK within {timeout}s"))
    return ConnectOutcome(result["rc"], None)


class MqttProbe:
    """A subscriber that records everything matching ``topic_filter``; use it to assert on traffic.

    Connects and subscribes in the constructor and returns only after SUBACK,
    so messages published afterwards are never missed. Runs paho's network
    thread (``loop_start``); reconnects automatically after a broker restart
    (re-subscribing in ``on_connect``).

    Example::

        with MqttProbe(broker, "homeassistant/#") as ha:
            start_daemon(...)
            cfg = ha.wait_for("homeassistant/sensor/genre_pi/genre/config", timeout=10)
            assert cfg.retain and json.loads(cfg.payload)["device_class"] == "enum"
            ha.wait_for("genre-pi/+/state", lambda m: m.text in GENRES)   # filters work too
    """

    def __init__(
        self,
        broker: MosquittoBroker,
        topic_filter: str | list[str] = "#",
        *,
        qos: int = 1,
        username: str | None = None,
        password: str | None = None,
        use_tls: bool = False,
        ca_cert: Path | None = None,
        client_cert: Path | None = None,
        client_key: Path | None = None,
        client_id: str | None = None,
        protocol: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv311,
        timeout: float = 5.0,
    ) -> None:
        self.broker = broker
        self.filters = [topic_filter] if isinstance(topic_filter, str) else list(topic_filter)
        self.qos = qos
        self._messages: list[MqttMessage] = []
        self._cond = threading.Condition()
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self.connect_codes: list[ReasonCode] = []
        self.client, port = _new_client(
            broker,
            client_id=client_id,
            username=username,
            password=password,
            use_tls=use_tls,
            ca_cert=ca_cert,
            client_cert=client_cert,
            client_key=client_key,
            protocol=protocol,
        )
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.on_disconnect = self._on_disconnect
        # Sub-second reconnects because broker restarts in tests take ~10 ms; paho
        # handles float delays fine although its annotation says int.
        self.client.reconnect_delay_set(min_delay=0.05, max_delay=0.5)  # type: ignore[arg-type]
        self.client.connect(broker.host, port, keepalive=30)
        self.client.loop_start()
        if not self._subscribed.wait(timeout):
            codes = ", ".join(str(c) for c in self.connect_codes) or "none"
            self.close()
            raise AssertionError(f"MqttProbe: not connected+subscribed within {timeout}s (CONNACK: {codes})")

    # paho callbacks (network thread) -------------------------------------

    def _on_connect(self, c: mqtt.Client, ud: Any, flags: Any, rc: ReasonCode, props: Any) -> None:
        self.connect_codes.append(rc)
        if rc.is_failure:
            return
        self._connected.set()
        c.subscribe([(f, self.qos) for f in self.filters])

    def _on_subscribe(self, c: mqtt.Client, ud: Any, mid: int, rcs: list[ReasonCode], props: Any) -> None:
        self._subscribed.set()

    def _on_disconnect(self, c: mqtt.Client, ud: Any, flags: Any, rc: ReasonCode, props: Any) -> None:
        self._connected.clear()

    def _on_message(self, c: mqtt.Client, ud: Any, msg: mqtt.MQTTMessage) -> None:
        m = MqttMessage(msg.topic, bytes(msg.payload), bool(msg.retain), msg.qos, time.monotonic())
        with self._cond:
            self._messages.append(m)
            self._cond.notify_all()

    # queries --------------------------------------------------------------

    @property
    def messages(self) -> list[MqttMessage]:
        """Snapshot of everything received so far, in arrival order."""
        with self._cond:
            return list(self._messages)

    def received(self, topic: str) -> list[MqttMessage]:
        """Messages whose topic matches ``topic`` (exact topic or MQTT filter with ``+``/``#``)."""
        return [m for m in self.messages if _matches(topic, m.topic)]

    def clear(self) -> None:
        """Forget received messages (e.g. between phases of one test)."""
        with self._cond:
            self._messages.clear()

    def wait_for(
        self,
        topic: str,
        predicate: Callable[[MqttMessage], bool] | None = None,
        timeout: float = 5.0,
        *,
        since: float | None = None,
    ) -> MqttMessage:
        """Return the first message on ``topic`` (exact or filter) satisfying ``predicate``.

        Already-received messages count; pass ``since=time.monotonic()`` taken
        before an action to only accept newer ones (or call :meth:`clear`).
        Raises ``AssertionError`` listing what did arrive after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for m in self._messages:
                    if since is not None and m.received_at < since:
                        continue
                    if _matches(topic, m.topic) and (predicate is None or predicate(m)):
                        return m
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            seen = list(self._messages)
        raise AssertionError(
            f"no message on {topic!r} matching predicate within {timeout}s; "
            f"{len(seen)} received on {self.filters}:\n{_describe(seen)}"
        )

    def wait_connected(self, timeout: float = 5.0) -> None:
        """Block until connected and subscribed on a live connection, e.g. after ``broker.restart()``.

        Right after a restart paho may not yet have noticed that its old socket
        is dead, so "connected" alone proves nothing: this re-subscribes and
        waits for the SUBACK, retrying every 0.5 s until ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                codes = ", ".join(str(c) for c in self.connect_codes) or "none"
                raise AssertionError(f"MqttProbe not (re)connected+subscribed within {timeout}s (CONNACKs: {codes})")
            if self._connected.wait(min(remaining, 0.5)):
                self._subscribed.clear()
                rc, _mid = self.client.subscribe([(f, self.qos) for f in self.filters])
                if rc == mqtt.MQTT_ERR_SUCCESS and self._subscribed.wait(min(max(remaining, 0.05), 0.5)):
                    return
            else:
                time.sleep(0.01)

    def publish(
        self,
        topic: str,
        payload: bytes | str | None = None,
        *,
        qos: int = 1,
        retain: bool = False,
        timeout: float = 5.0,
    ) -> None:
        """Publish and block until the broker acknowledged it (QoS 1/2) or it was sent (QoS 0).

        ``payload=None`` with ``retain=True`` clears a retained message.
        """
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(timeout=timeout)
        if not info.is_published():
            raise AssertionError(f"publish to {topic!r} not acknowledged within {timeout}s (rc={info.rc})")

    def close(self) -> None:
        """Disconnect and stop the network thread; idempotent."""
        with contextlib.suppress(Exception):
            self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> MqttProbe:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _matches(topic_or_filter: str, topic: str) -> bool:
    if topic_or_filter == topic:
        return True
    if "+" in topic_or_filter or "#" in topic_or_filter:
        return bool(mqtt.topic_matches_sub(topic_or_filter, topic))
    return False


def _describe(messages: list[MqttMessage], limit: int = 30) -> str:
    lines = [f"  {m.topic} retain={m.retain} qos={m.qos} payload={m.payload[:200]!r}" for m in messages[-limit:]]
    if len(messages) > limit:
        lines.insert(0, f"  ... {len(messages) - limit} earlier omitted")
    return "\n".join(lines) or "  (nothing)"


def unique_prefix(name: str = "t") -> str:
    """A topic prefix no other test uses, e.g. ``genre-pi-test/t-3f9a1c2b``; lets tests share one broker."""
    return f"genre-pi-test/{name}-{uuid.uuid4().hex[:8]}"
