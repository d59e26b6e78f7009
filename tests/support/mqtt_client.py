"""An MQTT client for tests: ``MqttProbe`` (subscribe, record, wait for a message) and ``try_connect``.

Talks to a :class:`tests.support.mosquitto.MosquittoBroker` (plain, password or TLS). Example::

    with MqttProbe(broker, "genre-pi/test1/#") as probe:
        probe.publish("genre-pi/test1/state", b"jazz", retain=True)
        msg = probe.wait_for("genre-pi/test1/state", lambda m: m.payload == b"jazz")
"""

from __future__ import annotations

import contextlib
import ssl
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

from tests.support.mosquitto import MosquittoBroker

__all__ = ["ConnectOutcome", "MqttMessage", "MqttProbe", "try_connect", "unique_prefix"]

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
